"""Go / no-go sign-offs on stage gates, and change-freeze windows.

Layering: models, choices, quorum and services import only apps.releases and apps.core. The entry
points (views, tasks, urls, admin) sit on top like the API does, and may call the gate in
apps.rollouts; apps.rollouts.gate_signoffs turns our state into gate blockers.
"""

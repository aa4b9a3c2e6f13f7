"""Go / no-go sign-offs on stage gates, and change-freeze windows.

Layering: this app imports apps.releases and the base apps (core, jobs, outbox), never
apps.rollouts: gate.py turns our state into gate blockers and registers them with the gate
(apps/releases/gate_checks.py). What needs the gate sits above: the sign-off page in apps.pages,
the sweep that asks for sign-offs once a gate waits only for them in apps.rollouts.
"""

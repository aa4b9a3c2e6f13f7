"""Incidents, escalation policies, contacts, on-call rotations and notification deliveries.

Imports releases and core only; rollouts (the breach path, the gate) and the API call into it.
"""

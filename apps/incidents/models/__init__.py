"""Incidents and their timeline, who is on call and how they are paged, and every delivery."""

from .deliveries import NotificationDelivery
from .incidents import Incident, IncidentEvent, IncidentQuerySet
from .oncall import (
    Contact,
    EscalationLevel,
    EscalationPolicy,
    Handoff,
    IncidentRouting,
    OnCallRotation,
    RotationMember,
    RotationOverride,
)
from .timetable import EscalationStep, FrozenLevel, Timetable

__all__ = [
    "Contact",
    "EscalationLevel",
    "EscalationPolicy",
    "EscalationStep",
    "FrozenLevel",
    "Handoff",
    "Incident",
    "IncidentEvent",
    "IncidentQuerySet",
    "IncidentRouting",
    "NotificationDelivery",
    "OnCallRotation",
    "RotationMember",
    "RotationOverride",
    "Timetable",
]

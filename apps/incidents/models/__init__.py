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
from .routing import Facts, Matcher, RoutingRule, parse_matchers
from .timetable import EscalationStep, FrozenLevel, Timetable

__all__ = [
    "Contact",
    "EscalationLevel",
    "EscalationPolicy",
    "EscalationStep",
    "Facts",
    "FrozenLevel",
    "Handoff",
    "Incident",
    "IncidentEvent",
    "IncidentQuerySet",
    "IncidentRouting",
    "Matcher",
    "NotificationDelivery",
    "OnCallRotation",
    "RotationMember",
    "RotationOverride",
    "RoutingRule",
    "Timetable",
    "parse_matchers",
]

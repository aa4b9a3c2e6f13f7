"""Incident values: every allowed severity, status, source, verb and delivery state in one place."""

from __future__ import annotations

from django.db import models

# Severity is declared beside the releases' vocabulary so that a metric criterion (checks) can
# name the severity of the incident its breach opens; it is the incidents' word, exported here.
from apps.releases.choices import Severity

__all__ = ["Severity"]

# Severities whose open incidents hold the other rollouts of their service.
BLOCKING_SEVERITIES = [Severity.SEV1, Severity.SEV2]


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"

    @classmethod
    def unresolved(cls) -> list[str]:
        return [cls.OPEN, cls.ACKNOWLEDGED, cls.MITIGATED]


class IncidentSource(models.TextChoices):
    MANUAL = "manual", "Opened by hand"
    BREACH = "breach", "Metric criterion breach"
    ALERTMANAGER = "alertmanager", "Alertmanager"


class RoutedBy(models.TextChoices):
    """What chose an incident's escalation policy when it opened."""

    RULE = "rule", "A routing rule"
    SERVICE = "service", "The service's policy"
    NAMED = "named", "Named when opened"
    NONE = "none", "Nothing: no rule matched and the service has no policy"


class MatchOp(models.TextChoices):
    """A label matcher's operator, as Alertmanager's: equal, not equal, regex, not regex."""

    EQUAL = "=", "="
    NOT_EQUAL = "!=", "!="
    REGEX = "=~", "=~"
    NOT_REGEX = "!~", "!~"


class EscalateWhile(models.TextChoices):
    UNACKNOWLEDGED = "unacknowledged", "Until someone acknowledges (as PagerDuty)"
    UNRESOLVED = "unresolved", "Until the incident is resolved"


class IncidentVerb(models.TextChoices):
    OPENED = "opened", "Opened"
    TRIGGERED_AGAIN = "triggered_again", "Triggered again"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"
    REOPENED = "reopened", "Reopened"
    UPDATED = "updated", "Updated"
    ESCALATED = "escalated", "Escalated"
    NOTIFIED = "notified", "Notification sent"
    NOTIFICATION_FAILED = "notification_failed", "Notification failed"


# Timeline entries also posted to the service's webhook.
ANNOUNCED_VERBS = [
    IncidentVerb.OPENED,
    IncidentVerb.ACKNOWLEDGED,
    IncidentVerb.MITIGATED,
    IncidentVerb.RESOLVED,
    IncidentVerb.REOPENED,
    IncidentVerb.ESCALATED,
]


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook (Slack-compatible)"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"

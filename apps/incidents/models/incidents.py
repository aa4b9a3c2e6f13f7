"""Incidents and their append-only timeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.core.actors import Actor, ActorKind
from apps.releases.models import Release, Service

from ..choices import (
    BLOCKING_SEVERITIES,
    IncidentSource,
    IncidentStatus,
    IncidentVerb,
    RoutedBy,
    Severity,
)
from .oncall import EscalationPolicy, validate_http_url
from .routing import RoutingRule
from .timetable import Timetable


class IncidentQuerySet(models.QuerySet):
    def unresolved(self) -> IncidentQuerySet:
        return self.filter(status__in=IncidentStatus.unresolved())

    def holding_rollouts_of(self, release: Release) -> IncidentQuerySet:
        """Unresolved SEV1/SEV2 incidents of the release's service not raised about it."""
        return (
            self.unresolved()
            .filter(service_id=release.service_id, severity__in=BLOCKING_SEVERITIES)
            .exclude(release_id=release.pk)
            .order_by("severity", "opened_at", "pk")
        )


class Incident(models.Model):
    """Something is wrong with a service: who knows, since when, and how far it escalated."""

    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="incidents")
    release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    severity = models.CharField(max_length=4, choices=Severity.choices, default=Severity.SEV3)
    status = models.CharField(
        max_length=20, choices=IncidentStatus.choices, default=IncidentStatus.OPEN, db_index=True
    )
    source = models.CharField(
        max_length=20, choices=IncidentSource.choices, default=IncidentSource.MANUAL
    )
    # What repeats of the same problem share: "breach:release-3", "alertmanager:ab12…".
    # One unresolved incident per service and fingerprint (constraint below).
    fingerprint = models.CharField(max_length=200, blank=True, db_index=True)
    labels = models.JSONField(default=dict, blank=True, help_text="Alert labels and annotations.")
    link = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_http_url],
        help_text="Where the alert came from.",
    )
    policy = models.ForeignKey(
        EscalationPolicy,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
        help_text="Chosen when the incident opened: named by hand, by the first routing rule "
        "that matched, or the service's policy.",
    )
    # Which of those chose it, and the sentence shown on the pages: the rule may be edited or
    # deleted since, so its name and conditions at opening are kept in `routing_note`.
    routed_by = models.CharField(
        max_length=10, choices=RoutedBy.choices, default=RoutedBy.SERVICE, editable=False
    )
    routing_rule = models.ForeignKey(
        RoutingRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="incidents",
        editable=False,
    )
    routing_note = models.CharField(max_length=500, blank=True, editable=False)
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Repeats of the trigger (a breach in a new episode, an alert firing again).
    trigger_count = models.PositiveIntegerField(default=1)
    last_triggered_at = models.DateTimeField(default=timezone.now)
    last_trigger_key = models.CharField(max_length=100, blank=True, editable=False)
    # Escalation: the clock starts at opening (again at reopening); `escalation_step` counts the
    # rows of the frozen timetable (`escalation_snapshot`) already paged. The tick advances it
    # with a conditional UPDATE, so two ticks never page the same step.
    escalation_started_at = models.DateTimeField(default=timezone.now)
    escalation_step = models.PositiveIntegerField(default=0)
    # The policy's timetable frozen when escalation starts (opening, reopening): what
    # `escalation_step` counts rows of, so editing the policy never moves an open incident.
    # Null when the incident has no policy. The shape is Timetable.as_json().
    escalation_snapshot = models.JSONField(null=True, blank=True, editable=False)
    reopen_count = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [models.Index(fields=["service", "status"], name="incident_service_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "fingerprint"],
                condition=Q(status__in=IncidentStatus.unresolved()) & ~Q(fingerprint=""),
                name="incident_one_open_per_fingerprint",
            ),
        ]
        permissions = [
            ("respond_incident", "Can acknowledge, mitigate, resolve and reopen incidents"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.severity_label} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("admin:incidents_incident_change", args=[self.pk])

    @property
    def severity_label(self) -> str:
        return self.severity.upper()

    @property
    def timetable(self) -> Timetable | None:
        """The escalation timetable frozen onto this incident; None when nobody is paged."""
        if self.escalation_snapshot is None:
            return None
        return Timetable.from_json(self.escalation_snapshot)

    def freeze_escalation(self, now: datetime) -> None:
        """Freeze the policy's timetable as it is now (at opening and at reopening).

        A policy deleted since the incident opened leaves the timetable it had: the reopened
        incident pages as it did, rather than nobody. Saving is the caller's.
        """
        if self.policy is not None:
            self.escalation_snapshot = Timetable.of(self.policy, now).as_json()

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        if self.acknowledged_at is None:
            return None
        return self.acknowledged_at - self.opened_at

    @property
    def time_to_resolve(self) -> timedelta | None:
        if self.resolved_at is None:
            return None
        return self.resolved_at - self.opened_at


class IncidentEventQuerySet(models.QuerySet):
    def timeline(self) -> IncidentEventQuerySet:
        return self.select_related("actor_user").order_by("created_at", "id")


class IncidentEvent(models.Model):
    """Append-only timeline entry: a status change, an escalation or a notification."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    verb = models.CharField(max_length=30, choices=IncidentVerb.choices, db_index=True)
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_name = models.CharField(max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_token_id = models.BigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = IncidentEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["incident", "created_at"], name="incidentevent_timeline")]
        constraints = [
            models.CheckConstraint(condition=~Q(actor_name=""), name="incidentevent_actor_named"),
        ]

    def __str__(self) -> str:
        return f"{self.get_verb_display()} by {self.actor_name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValidationError("Incident timeline entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValidationError("Incident timeline entries are append-only.")

    @classmethod
    def record(
        cls,
        incident: Incident,
        verb: str,
        actor: Actor,
        *,
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> IncidentEvent:
        """Append one entry to an incident's timeline."""
        return cls.objects.create(
            incident=incident,
            verb=verb,
            actor_kind=actor.kind,
            actor_name=actor.name,
            actor_user=actor.user if actor.kind == ActorKind.USER else None,
            actor_token_id=actor.token_id,
            reason=reason,
            data=data or {},
        )

    def summary(self) -> str:
        """One line for chat messages and the timeline: what happened, without the actor."""
        data = self.data
        verb = IncidentVerb(self.verb)
        if verb == IncidentVerb.ESCALATED:
            paged = ", ".join(data.get("paged", [])) or "nobody (no one on call)"
            return f"escalated to L{data.get('level')}: paging {paged}"
        if verb in (IncidentVerb.NOTIFIED, IncidentVerb.NOTIFICATION_FAILED):
            what = "sent" if verb == IncidentVerb.NOTIFIED else "failed"
            text = f"{data.get('channel', '')} to {data.get('target', '')} {what}"
            return f"{text}: {data['error']}" if data.get("error") else text
        return verb.label.lower()

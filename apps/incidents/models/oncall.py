"""Who is paged, and when: contacts, on-call rotations, escalation policies and service routing."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from apps.releases.models import Service

from ..choices import EscalateWhile, Severity, Weekday
from .timetable import condition_text, rule_text, severity_reaches


def validate_http_url(value: str) -> None:
    """An http(s) URL; unlike URLField, internal hosts (http://prometheus:9090/...) are fine."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise ValidationError(
            "Enter an http(s) URL, e.g. https://hooks.slack.com/services/…", code="invalid"
        )


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as 'Europe/Berlin'.")


class Contact(models.Model):
    """A person who can be paged: how to reach them, and optionally their rolloutdesk user."""

    name = models.CharField(max_length=120)
    role = models.CharField(max_length=120, blank=True, help_text="e.g. Backend team lead, CTO.")
    email = models.EmailField(help_text="Pages are emailed here.")
    phone = models.CharField(max_length=40, blank=True)
    chat_handle = models.CharField(max_length=80, blank=True, help_text="e.g. @sam on Slack.")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="oncall_contact",
        help_text="Lets this person acknowledge and resolve the incidents they are paged for.",
    )
    active = models.BooleanField(default=True, help_text="Inactive contacts are never paged.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.role})" if self.role else self.name


@dataclass(frozen=True)
class Handoff:
    """The moment a rotation's on-call person changes, and who takes over."""

    at: datetime  # UTC
    contact: Contact | None
    override: RotationOverride | None = None


class OnCallRotation(models.Model):
    """Members on call in turn; each shift starts at a weekday and wall-clock time in a zone."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Hand-offs follow this zone's wall clock, daylight saving included.",
    )
    handoff_weekday = models.PositiveSmallIntegerField(
        choices=Weekday.choices,
        default=Weekday.MONDAY,
        help_text="The first hand-off falls on this weekday on or after the start date.",
    )
    handoff_time = models.TimeField(default=time(9, 0), help_text="Local time of each hand-off.")
    length_days = models.PositiveSmallIntegerField(
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(366)],
        help_text="Days in one shift (7: weekly, 1: daily).",
    )
    start_date = models.DateField(
        default=timezone.localdate, help_text="Nobody is on call from this rotation before it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def ordered_members(self) -> list[Contact]:
        """The members in turn order (reads prefetched members when there are some)."""
        members = sorted(self.members.all(), key=lambda m: (m.position, m.pk))
        return [m.contact for m in members]

    def first_handoff_date(self) -> date:
        return self.start_date + timedelta(
            days=(self.handoff_weekday - self.start_date.weekday()) % 7
        )

    def handoff_at(self, index: int) -> datetime:
        """When shift `index` begins, in UTC.

        The hand-off is a wall-clock time on its date in the rotation's zone, so it keeps its
        local hour across a daylight-saving change. A time the clocks skip (02:30 on a
        spring-forward night) happens an hour later on the wall clock; a time that occurs twice
        (the fall-back night) happens at its first occurrence.
        """
        day = self.first_handoff_date() + timedelta(days=index * self.length_days)
        return datetime.combine(day, self.handoff_time, tzinfo=self.zone).astimezone(UTC)

    def shift_index(self, when: datetime) -> int:
        """The number of the regular shift running at `when` (negative before the start)."""
        local = when.astimezone(self.zone)
        index = (local.date() - self.first_handoff_date()).days // self.length_days
        # The day's hand-off may still be ahead of `when`: compare instants, not wall clocks.
        while self.handoff_at(index) > when:
            index -= 1
        while self.handoff_at(index + 1) <= when:
            index += 1
        return index

    def regular_at(self, when: datetime) -> Contact | None:
        """Who the turn order puts on call at `when`, overrides aside."""
        members = self.ordered_members()
        index = self.shift_index(when)
        if not members or index < 0:
            return None
        return members[index % len(members)]

    def override_at(self, when: datetime) -> RotationOverride | None:
        """The override covering `when`; the latest made wins when several overlap."""
        covering = [o for o in self.overrides.all() if o.starts_at <= when < o.ends_at]
        return max(covering, key=lambda o: (o.created_at, o.pk), default=None)

    def on_call_at(self, when: datetime) -> Contact | None:
        """Who is on call at `when`: an override's person, or the regular turn's."""
        override = self.override_at(when)
        return override.contact if override else self.regular_at(when)

    def _boundaries(self, after: datetime, regular: int) -> Iterator[datetime]:
        """Instants after `after` where the person may change: hand-offs and override edges."""
        edges = sorted(
            {
                edge
                for o in self.overrides.all()
                for edge in (o.starts_at, o.ends_at)
                if edge > after
            }
        )
        index = max(self.shift_index(after), -1) + 1
        handoffs = [self.handoff_at(index + n) for n in range(regular)]
        yield from sorted(set(edges) | set(handoffs))

    def handoffs(self, after: datetime, count: int = 4) -> list[Handoff]:
        """The next `count` changes of the person on call after `after`, overrides included."""
        members = self.ordered_members()
        current = self.on_call_at(after)
        # Enough regular hand-offs for `count` changes even when one member follows itself.
        regular = (count + 1) * max(len(members), 1)
        found: list[Handoff] = []
        for at in self._boundaries(after, regular):
            contact = self.on_call_at(at)
            if contact == current:
                continue
            found.append(Handoff(at=at, contact=contact, override=self.override_at(at)))
            current = contact
            if len(found) == count:
                break
        return found


class RotationMember(models.Model):
    """One place in a rotation's turn order."""

    rotation = models.ForeignKey(OnCallRotation, on_delete=models.CASCADE, related_name="members")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["rotation", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rotation", "position"], name="rotation_member_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.contact}"


class RotationOverride(models.Model):
    """Someone else takes the rotation for a while (swap, holiday, sick day)."""

    rotation = models.ForeignKey(OnCallRotation, on_delete=models.CASCADE, related_name="overrides")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["rotation", "starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="rotation_override_range"
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.contact} from {self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%Y-%m-%d %H:%M}"
        )

    def clean(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The override must end after it starts."})


class EscalationPolicy(models.Model):
    """Who is paged, after how long, while an incident is unacknowledged (or unresolved)."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    escalate_while = models.CharField(
        max_length=20, choices=EscalateWhile.choices, default=EscalateWhile.UNACKNOWLEDGED
    )
    repeat_times = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(10)],
        help_text="After the last level, start again from the first this many times (0: never).",
    )
    repeat_after_minutes = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="Minutes after the last level before a repeat round starts.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "escalation policies"

    def __str__(self) -> str:
        return self.name

    def rule_text(self) -> str:
        """The escalate-while rule in a sentence's words."""
        return rule_text(self.escalate_while)

    def ordered_levels(self) -> list[EscalationLevel]:
        """The levels in the order they are paged (what an incident's timetable freezes)."""
        return sorted(self.levels.all(), key=lambda lv: (lv.after_minutes, lv.position, lv.pk))


class EscalationLevel(models.Model):
    """One level of a policy: after N minutes, page these contacts and whoever is on call."""

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="levels")
    position = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1)], help_text="1 for L1, 2 for L2, ..."
    )
    after_minutes = models.PositiveIntegerField(
        default=0, help_text="Minutes after the incident opened (0: at once)."
    )
    contacts = models.ManyToManyField(Contact, blank=True, related_name="escalation_levels")
    rotation = models.ForeignKey(
        OnCallRotation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="escalation_levels",
        help_text="Whoever is on call in this rotation is paged too.",
    )
    min_severity = models.CharField(
        max_length=4,
        choices=Severity.choices,
        blank=True,
        help_text="Page this level only for incidents at least this severe (empty: all).",
    )

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "position"], name="escalation_level_position")
        ]

    def __str__(self) -> str:
        return f"L{self.position} after {self.after_minutes} min"

    @property
    def label(self) -> str:
        return f"L{self.position}"

    def applies_to(self, severity: str) -> bool:
        return severity_reaches(severity, self.min_severity)

    def condition_display(self) -> str:
        return condition_text(self.min_severity)


class IncidentRouting(models.Model):
    """How a service's incidents reach people: its escalation policy and its chat webhook."""

    service = models.OneToOneField(
        Service, on_delete=models.CASCADE, related_name="incident_routing"
    )
    policy = models.ForeignKey(
        EscalationPolicy,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="routings",
        help_text="New incidents of the service escalate by this policy.",
    )
    webhook_url = models.CharField(
        blank=True,
        max_length=500,
        validators=[validate_http_url],
        help_text="Incoming-webhook URL (Slack or compatible) told of every incident change.",
    )

    class Meta:
        verbose_name = "incident routing"
        verbose_name_plural = "incident routing"

    def __str__(self) -> str:
        return f"Incident routing of {self.service}"

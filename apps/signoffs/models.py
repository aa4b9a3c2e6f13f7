"""Sign-off rules (on plans, copied to releases), sign-offs, requests and change-freeze windows."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from apps.releases.models import Environment, Release, RolloutPlan, Service, Stage, StageTemplate

from .choices import Decision, FreezeRecurrence, QuorumMode, Weekday


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as 'Europe/Berlin'.")


class RuleTerms(models.Model):
    """What a gate's sign-off asks for; shared by plan rules and their per-release copies."""

    quorum = models.CharField(
        max_length=20, choices=QuorumMode.choices, default=QuorumMode.EACH_GROUP
    )
    approvals_needed = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="For “N approvals in all”: how many different people must say go.",
    )
    valid_for = models.DurationField(
        null=True,
        blank=True,
        help_text="A sign-off older than this no longer counts (e.g. 2 days). "
        "Empty: it counts until the gate is passed.",
    )
    author_may_approve = models.BooleanField(
        default=False, help_text="Whether the release's author may give a go on it."
    )

    class Meta:
        abstract = True

    def describe(self) -> str:
        """The rule in one sentence, e.g. "one go from each of: Product, On-call"."""
        names = ", ".join(g.name for g in self.groups.all())
        if self.quorum == QuorumMode.EACH_GROUP:
            return f"one go from each of: {names}"
        plural = "s" if self.approvals_needed != 1 else ""
        return f"{self.approvals_needed} go{plural} in all from members of: {names}"


class SignOffRule(RuleTerms):
    """A plan's sign-off rule on its start (no stage template) or on leaving one of its stages."""

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="signoff_rules")
    stage_template = models.ForeignKey(
        StageTemplate,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="signoff_rules",
        verbose_name="gate",
        help_text="Empty: the rule guards the start of the release. "
        "A stage: the rule guards leaving that stage.",
    )
    groups = models.ManyToManyField(
        Group, related_name="signoff_rules", help_text="Whose members may sign this gate."
    )

    class Meta:
        verbose_name = "sign-off rule"
        constraints = [
            models.UniqueConstraint(
                fields=["plan"],
                condition=Q(stage_template__isnull=True),
                name="signoffrule_one_start_rule_per_plan",
            ),
            models.UniqueConstraint(fields=["stage_template"], name="signoffrule_one_per_stage"),
        ]

    def __str__(self) -> str:
        where = f"leaving {self.stage_template.name}" if self.stage_template else "start"
        return f"{self.plan}: sign-off on {where}"

    def clean(self) -> None:
        if self.stage_template_id and self.stage_template.plan_id != self.plan_id:
            raise ValidationError({"stage_template": "That stage belongs to another plan."})


class ReleaseSignOffRule(RuleTerms):
    """A release's own copy of a plan rule, made at registration: plan edits never rewrite it."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="signoff_rules")
    stage = models.ForeignKey(
        Stage,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="signoff_rules",
        help_text="Empty: the start gate.",
    )
    groups = models.ManyToManyField(Group, related_name="+")
    source = models.ForeignKey(
        SignOffRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="copies"
    )

    class Meta:
        verbose_name = "release sign-off rule"
        constraints = [
            models.UniqueConstraint(
                fields=["release"],
                condition=Q(stage__isnull=True),
                name="releasesignoffrule_one_start_rule",
            ),
            models.UniqueConstraint(fields=["stage"], name="releasesignoffrule_one_per_stage"),
        ]

    def __str__(self) -> str:
        return f"{self.release}: {self.describe()}"


class SignOffQuerySet(models.QuerySet):
    def standing(self) -> SignOffQuerySet:
        """Neither withdrawn nor lapsed (it may still be for an earlier gate or expired)."""
        return self.filter(withdrawn_at__isnull=True, lapsed_at__isnull=True)


class SignOff(models.Model):
    """One person's go or no-go on one attempt of one gate of a release."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="signoffs")
    stage = models.ForeignKey(
        Stage,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="signoffs",
        help_text="The stage being left; empty for the start gate.",
    )
    # The attempt: a stage re-entered later is a new attempt, a pause/resume is not.
    stage_entered_at = models.DateTimeField(null=True, blank=True)
    gate_key = models.CharField(
        max_length=120, db_index=True, help_text="Gate attempt and artifact this sign-off is for."
    )
    commit_sha = models.CharField(max_length=64, blank=True, help_text="The artifact signed.")
    signer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signoffs"
    )
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    lapsed_at = models.DateTimeField(null=True, blank=True)
    lapse_reason = models.CharField(max_length=300, blank=True)

    objects = SignOffQuerySet.as_manager()

    class Meta:
        verbose_name = "sign-off"
        ordering = ["-created_at", "-id"]
        constraints = [
            # One standing decision per person per gate attempt: a new one replaces the old.
            models.UniqueConstraint(
                fields=["release", "gate_key", "signer"],
                condition=Q(withdrawn_at__isnull=True, lapsed_at__isnull=True),
                name="signoff_one_standing_per_signer",
            ),
            models.CheckConstraint(
                condition=~Q(decision=Decision.NO_GO) | ~Q(comment=""),
                name="signoff_no_go_has_comment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.signer} on {self.release}"

    def state(self, now: datetime | None = None, valid_for: timedelta | None = None) -> str:
        """standing, withdrawn, lapsed or expired: for lists and the API."""
        if self.withdrawn_at:
            return "withdrawn"
        if self.lapsed_at:
            return "lapsed"
        if valid_for is not None and self.created_at <= (now or timezone.now()) - valid_for:
            return "expired"
        return "standing"


class SignOffRequest(models.Model):
    """One person asked to sign one gate attempt; the row is the claim that makes it one email."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="signoff_requests")
    stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    gate_key = models.CharField(max_length=120)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signoff_requests"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    requested_by = models.CharField(max_length=150)
    early = models.BooleanField(
        default=False, help_text="Asked by a release manager before the other conditions were met."
    )
    gate_blockers = models.JSONField(
        default=list, blank=True, help_text="The gate's blockers when the request was made."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = "sign-off request"
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "gate_key", "user"], name="signoffrequest_once_per_gate"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} asked to sign {self.release}"


class SignerReminder(models.Model):
    """When a person was last reminded: the claim that keeps it to one reminder per period."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signoff_reminder"
    )
    last_sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user}: last reminded {self.last_sent_at}"


WEEKLY_FIELDS = ("weekly_start_day", "weekly_start_time", "weekly_end_day", "weekly_end_time")


class FreezeWindowQuerySet(models.QuerySet):
    def covering(self, service_id: int, environment_id: int) -> FreezeWindowQuerySet:
        """Enabled windows for this service and environment (no service named = every service)."""
        services = FreezeWindow.services.through.objects.filter(freezewindow=OuterRef("pk"))
        environments = FreezeWindow.environments.through.objects.filter(freezewindow=OuterRef("pk"))
        return self.filter(enabled=True).filter(
            ~Exists(services) | Exists(services.filter(service_id=service_id)),
            ~Exists(environments) | Exists(environments.filter(environment_id=environment_id)),
        )

    def possibly_active(self, now: datetime) -> FreezeWindowQuerySet:
        """Weekly windows, and one-off windows around `now`; is_active_at decides the weekly."""
        return self.filter(
            Q(recurrence=FreezeRecurrence.WEEKLY)
            | Q(recurrence=FreezeRecurrence.ONE_OFF, starts_at__lte=now, ends_at__gt=now)
        )


class FreezeWindow(models.Model):
    """A change freeze: start and advance are blocked while it is active."""

    name = models.CharField(max_length=120)
    reason = models.TextField(blank=True, help_text="Shown in the gate's blocker.")
    services = models.ManyToManyField(
        Service, blank=True, related_name="freeze_windows", help_text="None: every service."
    )
    environments = models.ManyToManyField(
        Environment, blank=True, related_name="freeze_windows", help_text="None: every environment."
    )
    recurrence = models.CharField(
        max_length=10, choices=FreezeRecurrence.choices, default=FreezeRecurrence.ONE_OFF
    )
    starts_at = models.DateTimeField(null=True, blank=True, help_text="One-off: from.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="One-off: until.")
    weekly_start_day = models.PositiveSmallIntegerField(
        choices=Weekday.choices, null=True, blank=True
    )
    weekly_start_time = models.TimeField(null=True, blank=True)
    weekly_end_day = models.PositiveSmallIntegerField(
        choices=Weekday.choices, null=True, blank=True
    )
    weekly_end_time = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Weekly windows follow this zone's wall clock, daylight saving included.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FreezeWindowQuerySet.as_manager()

    class Meta:
        verbose_name = "freeze window"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(recurrence=FreezeRecurrence.ONE_OFF)
                | Q(starts_at__isnull=False, ends_at__isnull=False, ends_at__gt=F("starts_at")),
                name="freezewindow_one_off_has_range",
            ),
            models.CheckConstraint(
                condition=~Q(recurrence=FreezeRecurrence.WEEKLY)
                | Q(
                    weekly_start_day__isnull=False,
                    weekly_start_time__isnull=False,
                    weekly_end_day__isnull=False,
                    weekly_end_time__isnull=False,
                ),
                name="freezewindow_weekly_has_days",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.recurrence == FreezeRecurrence.ONE_OFF:
            if self.starts_at is None:
                errors["starts_at"] = "A one-off freeze needs a start."
            if self.ends_at is None:
                errors["ends_at"] = "A one-off freeze needs an end."
            if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
                errors["ends_at"] = "The end must come after the start."
        else:
            for name in WEEKLY_FIELDS:
                if getattr(self, name) is None:
                    errors[name] = "A weekly freeze needs its start and end day and time."
            if not errors and self._week_seconds(
                self.weekly_start_day, self.weekly_start_time
            ) == self._week_seconds(self.weekly_end_day, self.weekly_end_time):
                errors["weekly_end_time"] = "The end must differ from the start."
        if errors:
            raise ValidationError(errors)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @staticmethod
    def _week_seconds(day: int, at: time) -> int:
        return day * 86400 + at.hour * 3600 + at.minute * 60 + at.second

    def is_active_at(self, now: datetime) -> bool:
        """Whether the freeze holds at `now`; weekly windows compare the zone's wall clock."""
        if not self.enabled:
            return False
        if self.recurrence == FreezeRecurrence.ONE_OFF:
            return self.starts_at <= now < self.ends_at
        local = now.astimezone(self.zone)
        point = self._week_seconds(local.weekday(), local.time())
        start = self._week_seconds(self.weekly_start_day, self.weekly_start_time)
        end = self._week_seconds(self.weekly_end_day, self.weekly_end_time)
        if start < end:
            return start <= point < end
        return point >= start or point < end  # the window wraps over the week's end

    def active_until(self, now: datetime) -> datetime | None:
        """When the occurrence active at `now` ends (an aware datetime), None if not active."""
        if not self.is_active_at(now):
            return None
        if self.recurrence == FreezeRecurrence.ONE_OFF:
            return self.ends_at
        local = now.astimezone(self.zone)
        days = (self.weekly_end_day - local.weekday()) % 7
        if days == 0 and local.time() >= self.weekly_end_time:
            days = 7
        # The end is a wall-clock time in the zone: its UTC offset is that date's, not today's.
        return datetime.combine(
            local.date() + timedelta(days=days), self.weekly_end_time, tzinfo=self.zone
        )

    def schedule_display(self) -> str:
        if self.recurrence == FreezeRecurrence.ONE_OFF:
            fmt = "%Y-%m-%d %H:%M %Z"
            if self.starts_at is None or self.ends_at is None:
                return "one-off (incomplete)"
            zone = self.zone
            return (
                f"{self.starts_at.astimezone(zone).strftime(fmt)} – "
                f"{self.ends_at.astimezone(zone).strftime(fmt)}"
            )
        if any(getattr(self, name) is None for name in WEEKLY_FIELDS):
            return "weekly (incomplete)"
        start = f"{Weekday(self.weekly_start_day).label} {self.weekly_start_time:%H:%M}"
        end = f"{Weekday(self.weekly_end_day).label} {self.weekly_end_time:%H:%M}"
        return f"every {start} – {end} {self.time_zone}"

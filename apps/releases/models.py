"""Services, environments, rollout plans, releases with their stages, and the audit timeline."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from apps.core.actors import Actor, ActorKind
from apps.core.stages import names_its_traffic, stage_label

from .choices import EventVerb, ReleaseStatus, StageStatus

percentage_validators = [MinValueValidator(0), MaxValueValidator(100)]


class Service(models.Model):
    """The thing being released, e.g. "AI Orchestra"."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    owner_team = models.CharField(max_length=120, blank=True)
    description = models.TextField(blank=True)
    notification_emails = models.TextField(
        blank=True,
        help_text="Addresses told of every release transition, one per line or comma-separated.",
    )
    default_plan = models.ForeignKey(
        "RolloutPlan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def notification_recipients(self) -> list[str]:
        raw = self.notification_emails.replace(",", "\n").split()
        return [address.strip() for address in raw if address.strip()]


class Environment(models.Model):
    """Where a release goes: staging, production, ..."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    is_production = models.BooleanField(
        default=False, help_text="Completed releases here count as deployments (DORA)."
    )
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class RolloutPlan(models.Model):
    """A reusable plan: ordered stages, each with traffic %, soak time and auto-advance."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StageTemplate(models.Model):
    """One step of a plan; copied into a release's Stage when the release is created."""

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="stages")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=80)
    traffic_percentage = models.PositiveSmallIntegerField(validators=percentage_validators)
    min_soak = models.DurationField(
        default=timedelta(0), help_text="Time the stage must run before it may be left."
    )
    auto_advance = models.BooleanField(
        default=False, help_text="Advance by itself once the gate is green."
    )
    min_requests = models.PositiveIntegerField(
        default=0,
        help_text="Requests the stage must serve during its soak (0: time only). Counted from "
        "the `count` of the service's traffic metric (see metric checks).",
    )
    environment = models.ForeignKey(
        Environment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Where this stage runs; empty: the release's environment. A plan may cross "
        "environments (staging, then production).",
    )

    class Meta:
        ordering = ["plan", "position"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "position"], name="stagetemplate_position"),
        ]

    def __str__(self) -> str:
        # "3. 25%", not "25% (25%)"; "2. canary (10 %)" when the name is not the percentage.
        label = f"{self.position + 1}. {self.name}"
        if not names_its_traffic(self.name, self.traffic_percentage):
            label += f" ({self.traffic_percentage} %)"
        return label

    @property
    def label(self) -> str:
        """The stage in a sentence or on a button: "half (50 %)", "25 %" (not "25% (25 %)")."""
        return stage_label(self.name, self.traffic_percentage)


class ReleaseQuerySet(models.QuerySet):
    def in_progress(self) -> ReleaseQuerySet:
        return self.filter(status=ReleaseStatus.IN_PROGRESS)

    def active(self) -> ReleaseQuerySet:
        return self.filter(status__in=ReleaseStatus.active())

    def for_services(self, service_ids: Any) -> ReleaseQuerySet:
        return self.filter(service_id__in=service_ids)

    def with_related(self) -> ReleaseQuerySet:
        return self.select_related("service", "environment", "plan", "current_stage", "author")

    def with_current_environment(self) -> ReleaseQuerySet:
        """Annotate `current_environment_slug` (Release.current_environment's slug) in SQL, so a
        list of releases says where each is without a query per release."""
        first = Stage.objects.filter(release=OuterRef("pk"), position=0)
        return self.annotate(
            current_environment_slug=Coalesce(
                F("current_stage__environment__slug"),
                Subquery(first.values("environment__slug")[:1]),
            )
        )

    def in_environment(self, slug: str) -> ReleaseQuerySet:
        """Releases whose current environment (Release.current_environment) has this slug: the
        current stage's, or for a release at no stage yet its first stage's."""
        first_stage_there = Stage.objects.filter(
            release=OuterRef("pk"), position=0, environment__slug=slug
        )
        return self.filter(
            Q(current_stage__environment__slug=slug)
            | Q(current_stage__isnull=True) & Exists(first_stage_there)
        )


sha_validator = RegexValidator(r"^[0-9a-fA-F]{7,64}$", "A commit SHA is 7 to 64 hex digits.")


class Release(models.Model):
    """A version of a service going to an environment under a plan."""

    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="releases")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="releases")
    version = models.CharField(max_length=100)
    plan = models.ForeignKey(RolloutPlan, on_delete=models.PROTECT, related_name="releases")
    commit_sha = models.CharField(max_length=64, blank=True, validators=[sha_validator])
    commit_time = models.DateTimeField(null=True, blank=True)
    changelog_url = models.URLField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="authored_releases",
    )
    author_name = models.CharField(
        max_length=150, blank=True, help_text="As reported by CI when there is no user."
    )
    status = models.CharField(
        max_length=20, choices=ReleaseStatus.choices, default=ReleaseStatus.PLANNED, db_index=True
    )
    current_stage = models.ForeignKey(
        "Stage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stage_count = models.PositiveSmallIntegerField(default=0, editable=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment", "version"], name="release_unique_version"
            ),
        ]
        indexes = [models.Index(fields=["service", "status"])]
        permissions = [
            ("operate_release", "Can start, advance, pause, resume, roll back and abort"),
            ("force_advance", "Can advance past a red gate, with a reason"),
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.version} → {self.environment}"

    def get_absolute_url(self) -> str:
        return reverse("admin:releases_release_change", args=[self.pk])

    @property
    def traffic_percentage(self) -> int:
        """The traffic this release serves now: its stage's while running or paused."""
        if self.status == ReleaseStatus.COMPLETED:
            return 100
        if self.status in ReleaseStatus.active() and self.current_stage is not None:
            return self.current_stage.traffic_percentage
        return 0

    @property
    def destination(self) -> str:
        """What the emails, Slack and the incident and sign-off pages name after the arrow
        ("2.4.0 → Production"): the target environment, and where the release runs now while
        a stage of another one is current ("Production (now in Staging)"), so that a breach in
        staging does not read as one in production."""
        target = self.environment.name
        if self.status not in ReleaseStatus.active() or self.current_stage_id is None:
            return target
        if self.current_stage.environment_id == self.environment_id:
            return target
        return f"{target} (now in {self.current_stage.environment.name})"

    @property
    def current_environment(self) -> Environment:
        """Where the release is now: its current stage's environment; before it has one (a
        planned release), its first stage's. Release.environment is where the plan ends up by
        default (the stages' default), not where the release is."""
        if self.current_stage_id is not None:
            return self.current_stage.environment
        first = self.stages.select_related("environment").order_by("position").first()
        return first.environment if first is not None else self.environment

    def step_environment_id(self) -> int:
        """The environment the release's next step changes traffic in: the first stage's for a
        start, the next stage's for an advance, the last stage's for the completion (a change
        freeze there holds the step). Release.environment for a finished release."""
        if self.status in ReleaseStatus.active() and self.current_stage_id is not None:
            following = (
                self.stages.filter(position__gt=self.current_stage.position)
                .order_by("position")
                .values_list("environment_id", flat=True)
                .first()
            )
            return following or self.current_stage.environment_id
        if self.status == ReleaseStatus.PLANNED:
            first = self.stages.order_by("position").values_list("environment_id", flat=True)
            return first.first() or self.environment_id
        return self.environment_id

    def percentage_in(self, environment: Environment) -> int | None:
        """The traffic this release serves in `environment`; None if no stage of it runs there.

        Its current stage's percentage in the current stage's environment; 100 in an
        environment whose stages have all passed (the release was promoted past it) while it is
        running, paused or completed; 0 in one it has not reached, and 0 everywhere once rolled
        back or aborted.
        """
        stages = [s for s in self.stages.all() if s.environment_id == environment.pk]
        if not stages:
            return None
        if self.status == ReleaseStatus.COMPLETED:
            return 100
        if self.status not in ReleaseStatus.active():
            return 0
        current = self.current_stage
        if current is not None and current.environment_id == environment.pk:
            return current.traffic_percentage
        if all(s.status == StageStatus.PASSED for s in stages):
            return 100
        return 0

    @property
    def author_display(self) -> str:
        return self.author.get_username() if self.author else self.author_name

    def bucket(self, unit: str, percentage: int | None = None) -> tuple[str, int]:
        """Deterministic treatment/control assignment of a user or org id.

        The unit's point in [0, 10000) depends only on the release and the unit, so raising the
        percentage only adds units to the treatment: one in it at 10 % stays in it at 25 %.
        `percentage`: the one to assign at (an environment's, `percentage_in`); default the
        release's current one.
        """
        digest = hashlib.sha256(f"{self.pk}:{unit}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") % 10_000
        if percentage is None:
            percentage = self.traffic_percentage
        variant = "treatment" if point < percentage * 100 else "control"
        return variant, percentage


class Stage(models.Model):
    """A release's own copy of a plan step, with when it was entered and left."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="stages")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=80)
    traffic_percentage = models.PositiveSmallIntegerField(validators=percentage_validators)
    min_soak = models.DurationField(default=timedelta(0))
    auto_advance = models.BooleanField(default=False)
    status = models.CharField(
        max_length=20, choices=StageStatus.choices, default=StageStatus.PENDING
    )
    entered_at = models.DateTimeField(null=True, blank=True)
    exited_at = models.DateTimeField(null=True, blank=True)
    paused_for = models.DurationField(
        default=timedelta(0), help_text="Time spent paused; it does not count as soak."
    )
    min_requests = models.PositiveIntegerField(default=0)
    # Where the stage runs: its template's environment, or the release's when the template names
    # none. Always set, so readers never resolve the default themselves.
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    # The artifact the stage ran: the release's commit when the stage was entered. The gate into
    # another environment asks that every earlier stage passed with the release's commit.
    commit_sha = models.CharField(max_length=64, blank=True)
    # The plan step this stage was copied from: its metric criteria watch the stage.
    template = models.ForeignKey(
        StageTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["release", "position"]
        constraints = [
            models.UniqueConstraint(fields=["release", "position"], name="stage_position"),
        ]

    def __str__(self) -> str:
        # "3. 25%", not "25% (25%)"; "2. canary (10 %)" when the name is not the percentage.
        label = f"{self.position + 1}. {self.name}"
        if not names_its_traffic(self.name, self.traffic_percentage):
            label += f" ({self.traffic_percentage} %)"
        return label

    @property
    def label(self) -> str:
        """The stage in a sentence or on a button: "half (50 %)", "25 %" (not "25% (25 %)")."""
        return stage_label(self.name, self.traffic_percentage)

    def soaked(self, now: datetime, paused_at: datetime | None = None) -> timedelta:
        """Time this stage has run unpaused: paused time does not count toward the soak."""
        if self.entered_at is None:
            return timedelta(0)
        end = self.exited_at or now
        running_pause = (end - paused_at) if paused_at and not self.exited_at else timedelta(0)
        return max(timedelta(0), end - self.entered_at - self.paused_for - running_pause)


class EventQuerySet(models.QuerySet):
    def timeline(self) -> EventQuerySet:
        return self.select_related("actor_user", "stage").order_by("created_at", "id")


class Event(models.Model):
    """Append-only audit timeline entry: who did what to a release, when and why."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="events")
    stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    verb = models.CharField(max_length=40, choices=EventVerb.choices, db_index=True)
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_name = models.CharField(max_length=150)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_token_id = models.BigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["release", "created_at"])]
        constraints = [
            models.CheckConstraint(condition=~Q(actor_name=""), name="event_actor_named"),
        ]

    def __str__(self) -> str:
        return f"{self.get_verb_display()} by {self.actor_name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValidationError("Events are append-only and cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValidationError("Events are append-only and cannot be deleted.")

    @classmethod
    def record(
        cls,
        release: Release,
        verb: str,
        actor: Actor,
        *,
        reason: str = "",
        stage: Stage | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """Append one entry to a release's timeline."""
        return cls.objects.create(
            release=release,
            stage=stage,
            verb=verb,
            actor_kind=actor.kind,
            actor_name=actor.name,
            actor_user=actor.user if actor.kind == ActorKind.USER else None,
            actor_token_id=actor.token_id,
            reason=reason,
            data=data or {},
        )

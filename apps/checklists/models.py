"""Checklist templates (versioned, ordered sections and items), which plans use them, and each
release's own snapshot of them with who ticked what, when, and the history of every change."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.core.actors import Actor, ActorKind
from apps.releases.models import Release, RolloutPlan, Stage, StageTemplate

from .choices import ChecklistKind, ItemState

KEY_MAX_LENGTH = 60
key_validator = RegexValidator(
    r"^[a-z0-9]+(?:[-_.][a-z0-9]+)*$",
    "A key is lower-case letters and digits, words joined by '-', '_' or '.', e.g. security-scan.",
)


def validate_evidence_url(value: str) -> None:
    """An http(s) link; unlike URLField, internal hosts (https://ci/run/7) are fine."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise ValidationError(
            "Enter an http(s) link, e.g. https://ci.example.com/runs/7.", code="invalid"
        )


class ChecklistTemplate(models.Model):
    """One version of a named checklist; importing the same name again adds the next version."""

    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    kind = models.CharField(max_length=20, choices=ChecklistKind.choices)
    description = models.TextField(blank=True)
    is_current = models.BooleanField(
        default=True, help_text="New releases use the current version; older ones are history."
    )
    source = models.CharField(
        max_length=255, blank=True, help_text="The runbook file it was imported from."
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="checklisttemplate_version"),
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(is_current=True),
                name="checklisttemplate_one_current",
                violation_error_message="Another version of this checklist is already current.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"


class TemplateSection(models.Model):
    """An ordered heading of a template, e.g. "Code Quality"."""

    template = models.ForeignKey(
        ChecklistTemplate, on_delete=models.CASCADE, related_name="sections"
    )
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["template", "position"]
        constraints = [
            models.UniqueConstraint(fields=["template", "position"], name="templatesection_pos"),
        ]

    def __str__(self) -> str:
        return self.name


class TemplateItem(models.Model):
    """A line of a template; with a key it is automated (CI reports it), without one manual."""

    template = models.ForeignKey(ChecklistTemplate, on_delete=models.CASCADE, related_name="items")
    section = models.ForeignKey(TemplateSection, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(help_text="Order within the section.")
    text = models.TextField()
    required = models.BooleanField(default=True, help_text="Open required items hold the gate.")
    key = models.CharField(
        max_length=KEY_MAX_LENGTH,
        blank=True,
        validators=[key_validator],
        help_text="Makes the item automated: CI reports it by this key (tests, coverage, ...).",
    )

    class Meta:
        ordering = ["section__position", "position"]

    def __str__(self) -> str:
        return self.text

    def clean(self) -> None:
        if self.section_id and self.template_id and self.section.template_id != self.template_id:
            raise ValidationError({"section": "Choose a section of this template."})


class PlanChecklist(models.Model):
    """A template a plan applies: pre-deployment (gates start), a stage's exit, or after completion.

    Stage-exit templates name the plan step whose exit they gate; the other kinds name none.
    """

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="checklists")
    template = models.ForeignKey(
        ChecklistTemplate, on_delete=models.PROTECT, related_name="plan_links"
    )
    stage_template = models.ForeignKey(
        StageTemplate,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="checklists",
        verbose_name="stage",
        help_text="For stage-exit checklists: the stage whose exit it gates.",
    )

    class Meta:
        ordering = ["plan", "id"]
        verbose_name = "plan checklist"
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "template", "stage_template"], name="planchecklist_unique"
            ),
            models.UniqueConstraint(
                fields=["plan", "template"],
                condition=Q(stage_template__isnull=True),
                name="planchecklist_unique_planwide",
            ),
        ]

    def __str__(self) -> str:
        where = f" at exit of {self.stage_template.name}" if self.stage_template_id else ""
        return f"{self.template}{where}"

    def clean(self) -> None:
        if self.template_id is None:
            return
        kind = self.template.kind
        # The stage, not its id: on the plan page it may be a stage row saved just before
        # this one (apps/releases/plan_stages.py), without an id while the page is validated.
        stage = self.stage_template
        if kind == ChecklistKind.STAGE_EXIT and stage is None:
            raise ValidationError({"stage_template": "A stage-exit checklist needs its stage."})
        if kind != ChecklistKind.STAGE_EXIT and stage is not None:
            raise ValidationError(
                {"stage_template": f"A {self.template.get_kind_display()} checklist has no stage."}
            )
        if stage is not None and stage.pk and stage.plan_id != self.plan_id:
            raise ValidationError({"stage_template": "Choose a stage of this plan."})


class ActorStamp(models.Model):
    """Who did something: the same fields as an Event's actor."""

    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices, blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_token_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        abstract = True

    def stamp(self, actor: Actor) -> None:
        self.actor_kind = actor.kind
        self.actor_name = actor.name
        self.actor_user = actor.user if actor.kind == ActorKind.USER else None
        self.actor_token_id = actor.token_id


def _item_count(**filters: Any) -> Coalesce:
    # A correlated subquery rather than Count("items"): a join added later (an admin search
    # across items) would multiply a joined count.
    items = (
        ChecklistItem.objects.filter(checklist=OuterRef("pk"), **filters)
        .order_by()
        .values("checklist")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(items), 0)


class ChecklistQuerySet(models.QuerySet):
    def with_progress(self) -> ChecklistQuerySet:
        """Counts in the same query: items, done items, and required items still open."""
        return self.annotate(
            item_total=_item_count(),
            item_done=_item_count(state=ItemState.DONE),
            required_open=_item_count(state=ItemState.OPEN, required=True),
        )


class Checklist(models.Model):
    """A release's own copy of a template, taken when the release was registered."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="checklists")
    template = models.ForeignKey(
        ChecklistTemplate,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="checklists",
        help_text="The template version it was copied from.",
    )
    name = models.CharField(max_length=200)
    template_version = models.PositiveIntegerField(default=1)
    kind = models.CharField(max_length=20, choices=ChecklistKind.choices, db_index=True)
    stage = models.ForeignKey(
        Stage,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="checklists",
        help_text="For stage-exit checklists: the stage whose exit it gates.",
    )
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    opened_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Post-deployment and review checklists open when the release completes.",
    )

    objects = ChecklistQuerySet.as_manager()

    class Meta:
        ordering = ["release", "position", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


class ChecklistItemQuerySet(models.QuerySet):
    def required_open(self) -> ChecklistItemQuerySet:
        return self.filter(required=True, state=ItemState.OPEN)


class ChecklistItem(ActorStamp):
    """One line of a release's checklist: its state, who set it, when, a comment and evidence."""

    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    section = models.CharField(max_length=200)
    text = models.TextField()
    required = models.BooleanField(default=True)
    key = models.CharField(max_length=KEY_MAX_LENGTH, blank=True, db_index=True)
    state = models.CharField(
        max_length=10, choices=ItemState.choices, default=ItemState.OPEN, db_index=True
    )
    changed_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    evidence_url = models.CharField(max_length=500, blank=True, validators=[validate_evidence_url])

    objects = ChecklistItemQuerySet.as_manager()

    class Meta:
        ordering = ["checklist", "position"]
        permissions = [("tick_checklistitem", "Can tick and untick checklist items")]

    def __str__(self) -> str:
        return self.text

    @property
    def is_done(self) -> bool:
        return self.state == ItemState.DONE

    @property
    def is_automated(self) -> bool:
        """CI reports it by its key, with its evidence; manual items have no key."""
        return bool(self.key)


class ChecklistItemChange(ActorStamp):
    """Append-only history of an item: every tick, untick and CI report, with its actor."""

    item = models.ForeignKey(ChecklistItem, on_delete=models.CASCADE, related_name="history")
    state = models.CharField(max_length=10, choices=ItemState.choices, help_text="State after.")
    previous_state = models.CharField(max_length=10, choices=ItemState.choices)
    passed = models.BooleanField(null=True, blank=True, help_text="What CI reported, if CI.")
    comment = models.TextField(blank=True)
    evidence_url = models.CharField(max_length=500, blank=True, validators=[validate_evidence_url])
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_state_display()} by {self.actor_name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValidationError("Checklist history is append-only.")
        super().save(*args, **kwargs)

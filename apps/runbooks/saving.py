"""Save a reviewed draft: plan and stages, metric criteria and sources, escalation policy and
checklists, linked to one service, in one transaction, or nothing.

Everything is checked before anything is written, and every refusal names the item (and its
source line) and what is wrong, so the reviewer can fix or untick it. An import never edits what
an earlier import made: the plan and the policy are new (named "… v2" when the name is taken),
the checklists are new versions of their templates, and the service is pointed at the new plan
and policy. Releases already registered keep the stages they copied.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify

from apps.checklists.choices import ChecklistKind
from apps.checklists.drafts import DetectedChecklist
from apps.checklists.models import PlanChecklist
from apps.checklists.services import ChecklistError, save_template_version, validate_checklist
from apps.checks.choices import (
    BadDirection,
    Comparator,
    CriticalAction,
    SourceKind,
    WarningAction,
)
from apps.checks.models import MetricCriterion, MetricDefinition, MetricSource
from apps.core.actors import Actor
from apps.incidents.models import Contact, EscalationLevel, EscalationPolicy, IncidentRouting
from apps.releases.choices import Severity
from apps.releases.models import Environment, RolloutPlan, Service, StageTemplate

from .draft import CriterionDraft, Draft, LevelDraft, StageDraft
from .models import RunbookImport

# A level the runbook gives no time is paged this long after the one before it.
DEFAULT_LEVEL_GAP_MINUTES = 15
MAX_WINDOW = timedelta(days=1)  # MetricCriterion.for_window's limit
_PLAN_NAME_MAX = RolloutPlan._meta.get_field("name").max_length
_POLICY_NAME_MAX = EscalationPolicy._meta.get_field("name").max_length


class ImportRefused(ValidationError):
    """The draft cannot be saved as it is; `messages` name each item and what is wrong."""


@dataclass
class SaveOptions:
    """What the runbook cannot say: where its Prometheus rules and SQL queries are read."""

    prometheus_url: str = ""
    sql_database: str = ""


@dataclass
class SavedImport:
    record: RunbookImport
    plan: RolloutPlan | None
    policy: EscalationPolicy | None
    criteria: list[MetricCriterion] = field(default_factory=list)
    checklists: list[str] = field(default_factory=list)
    # Targets no contact was found for ("[Name]", "CTO"): left for someone to fill in.
    unfilled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [f"Imported {self.record.source} for {self.record.service}."]
        if self.plan is not None:
            lines.append(f"Plan {self.plan.name!r}: {self.plan.stages.count()} stage(s).")
        lines.append(f"{len(self.criteria)} metric criteria.")
        if self.policy is not None:
            lines.append(
                f"Escalation policy {self.policy.name!r}: {self.policy.levels.count()} level(s)."
            )
        lines.extend(f"Checklist {name}" for name in self.checklists)
        if self.unfilled:
            lines.append("No contact yet for: " + ", ".join(self.unfilled) + " (add them).")
        lines.extend(f"Note: {note}" for note in self.notes)
        return lines


def save_draft(
    draft: Draft,
    *,
    service: Service,
    actor: Actor,
    options: SaveOptions | None = None,
) -> SavedImport:
    """Write the draft for the service in one transaction; ImportRefused before any write."""
    options = options or SaveOptions()
    notes: list[str] = []
    environments = _environments(draft.plan.stages)
    grouped = _group_criteria(draft.criteria, notes)
    _check(draft, grouped, environments, options)
    with transaction.atomic():
        plan = _save_plan(draft, environments) if draft.plan.stages else None
        criteria = _save_criteria(grouped, plan, service, options, notes) if plan else []
        policy, unfilled = _save_policy(draft, service)
        checklists = _save_checklists(draft.checklists, plan, actor, draft.source, notes)
        if plan is not None:
            service.default_plan = plan
            service.save(update_fields=["default_plan"])
        record = RunbookImport.objects.create(
            service=service,
            source=draft.source[:255],
            title=draft.title[:200],
            draft=draft.as_json(),
            plan=plan,
            policy=policy,
            created_by=actor.name[:150],
        )
    return SavedImport(record, plan, policy, criteria, checklists, unfilled, notes)


def save_checklists_only(draft: Draft, *, actor: Actor) -> list[str]:
    """Without a service: only the checklists (templates belong to no service), all or none."""
    errors: list[str] = []
    if not draft.checklists:
        errors.append(f"{draft.source} has no checklist items; name a service to import the rest.")
    for checklist in draft.checklists:
        try:
            validate_checklist(checklist)
        except ValidationError as exc:
            errors.extend(exc.messages)
    names = [c.name.strip() for c in draft.checklists]
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"Two checklists would be named {name!r}; rename one.")
    if errors:
        raise ImportRefused(errors)
    with transaction.atomic():
        return _save_checklists(draft.checklists, None, actor, draft.source, [])


# --- checks before writing ---------------------------------------------------------------------


def _environments(stages: Iterable[StageDraft]) -> dict[str, Environment | None]:
    """Each stage's environment word ("staging") to the Environment it names (by slug or name)."""
    found: dict[str, Environment | None] = {}
    for word in {stage.environment.strip() for stage in stages}:
        if not word:
            found[word] = None
            continue
        found[word] = (
            Environment.objects.filter(Q(slug__iexact=word) | Q(name__iexact=word))
            .order_by("id")
            .first()
        )
    return found


@dataclass
class _Grouped:
    """One criterion to save: a metric's warning and critical thresholds on one side."""

    first: CriterionDraft
    warning: CriterionDraft | None = None
    critical: CriterionDraft | None = None


def _group_criteria(criteria: list[CriterionDraft], notes: list[str]) -> list[_Grouped]:
    groups: dict[tuple[str, str, str], _Grouped] = {}
    for criterion in criteria:
        if criterion.unit == "p":
            notes.append(
                f"line {criterion.line}: {criterion.metric} at p < {criterion.threshold:g} is a "
                "significance test against a control group: not saved; set it on the plan's "
                "criteria once the control is measured."
            )
            continue
        key = (criterion.metric, criterion.operator, criterion.source_kind)
        group = groups.setdefault(key, _Grouped(criterion))
        slot = "critical" if criterion.severity == "critical" else "warning"
        if getattr(group, slot) is not None:
            # Two critical lines for one metric (a rollback trigger and a NO-GO): the stricter
            # one acts first, and its action is the one kept.
            kept = getattr(group, slot)
            if _stricter(criterion, kept):
                setattr(group, slot, criterion)
            notes.append(
                f"line {criterion.line}: {criterion.metric} {criterion.operator} "
                f"{criterion.threshold} repeats line {kept.line}'s {slot} threshold; the "
                "stricter is kept."
            )
            continue
        setattr(group, slot, criterion)
    return list(groups.values())


def _stricter(new: CriterionDraft, old: CriterionDraft) -> bool:
    if new.threshold is None or old.threshold is None:
        return False
    if new.operator in (">", ">="):
        return new.threshold < old.threshold
    return new.threshold > old.threshold


def _check(
    draft: Draft,
    grouped: list[_Grouped],
    environments: dict[str, Environment | None],
    options: SaveOptions,
) -> None:
    errors: list[str] = []
    for stage in draft.plan.stages:
        where = f"stage {stage.name!r} (line {stage.line})"
        if not stage.name.strip():
            errors.append(f"stage on line {stage.line}: give it a name.")
        if not 0 <= stage.traffic_percentage <= 100:
            errors.append(f"{where}: traffic {stage.traffic_percentage}% is not within 0–100.")
        if stage.min_soak_seconds < 0:
            errors.append(f"{where}: the soak cannot be negative.")
        if stage.environment.strip() and environments.get(stage.environment.strip()) is None:
            errors.append(
                f"{where}: no environment {stage.environment!r}; create it or change the stage's "
                "environment."
            )
    if draft.plan.stages and len(draft.plan.name.strip() or draft.title) == 0:
        errors.append("Give the plan a name.")
    if not draft.plan.stages and draft.criteria:
        errors.append("Criteria watch a plan's stages: keep at least one stage, or untick them.")
    kinds = {c.source_kind for g in grouped for c in (g.warning, g.critical) if c is not None}
    for group in grouped:
        for criterion in (group.warning, group.critical):
            if criterion is None:
                continue
            where = f"criterion {criterion.metric!r} (line {criterion.line})"
            if not slugify(criterion.metric.replace("_", "-")):
                errors.append(f"line {criterion.line}: give the criterion a metric name.")
            if criterion.operator not in Comparator.values:
                errors.append(f"{where}: unknown operator {criterion.operator!r}.")
            if criterion.threshold is None or not math.isfinite(criterion.threshold):
                errors.append(f"{where}: give it a threshold, or untick it.")
            actions = CriticalAction if criterion.severity == "critical" else WarningAction
            if criterion.action not in actions.values:
                errors.append(
                    f"{where}: {criterion.action!r} is not a {criterion.severity} action."
                )
            if criterion.source_kind == SourceKind.SQL and not criterion.query.strip():
                errors.append(f"{where}: an SQL criterion needs its query.")
    if SourceKind.PROMETHEUS in kinds:
        url = options.prometheus_url or getattr(settings, "RUNBOOK_PROMETHEUS_URL", "")
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            errors.append(
                "The runbook's Prometheus alert rules need the server's base URL "
                "(e.g. http://prometheus.internal:9090): give it, or untick those criteria."
            )
    if SourceKind.SQL in kinds and _sql_database(options) not in settings.CHECKS_SQL_DATABASES:
        known = ", ".join(sorted(settings.CHECKS_SQL_DATABASES)) or "none configured"
        errors.append(
            f"The runbook's SQL queries need a read-only database (known: {known}): name one, "
            "or untick those criteria."
        )
    for level in draft.escalation.levels:
        if not level.targets:
            errors.append(f"escalation level {level.position} (line {level.line}): who is paged?")
        if level.after_minutes is not None and level.after_minutes < 0:
            errors.append(f"escalation level {level.position}: the time cannot be negative.")
    positions = [level.position for level in draft.escalation.levels]
    if len(set(positions)) != len(positions):
        errors.append("Two escalation levels have the same position; number them 1, 2, 3 …")
    for checklist in draft.checklists:
        try:
            validate_checklist(checklist)
        except ValidationError as exc:
            errors.extend(exc.messages)
    names = [c.name.strip() for c in draft.checklists]
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"Two checklists would be named {name!r}; rename one.")
    if draft.is_empty:
        errors.append("Nothing is left to save: every item is unticked.")
    if errors:
        raise ImportRefused(errors)


def _sql_database(options: SaveOptions) -> str:
    if options.sql_database:
        return options.sql_database
    known = sorted(settings.CHECKS_SQL_DATABASES)
    return known[0] if len(known) == 1 else ""


# --- writing -----------------------------------------------------------------------------------


def _free_name(model: type, wanted: str, limit: int) -> str:
    """The wanted name, or "<wanted> v2", "v3" … the first that is free."""
    base = wanted.strip()[:limit]
    name, version = base, 1
    while model.objects.filter(name=name).exists():
        version += 1
        suffix = f" v{version}"
        name = base[: limit - len(suffix)] + suffix
    return name


def _free_slug(name: str) -> str:
    base = (slugify(name) or "plan")[:70]
    slug, number = base, 1
    while RolloutPlan.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    return slug


def _save_plan(draft: Draft, environments: dict[str, Environment | None]) -> RolloutPlan:
    name = _free_name(RolloutPlan, draft.plan.name or draft.title, _PLAN_NAME_MAX)
    plan = RolloutPlan.objects.create(
        name=name, slug=_free_slug(name), description=f"Imported from {draft.source}."
    )
    StageTemplate.objects.bulk_create(
        StageTemplate(
            plan=plan,
            position=position,
            name=stage.name.strip()[:80],
            traffic_percentage=stage.traffic_percentage,
            min_soak=timedelta(seconds=stage.min_soak_seconds),
            environment=environments.get(stage.environment.strip()),
        )
        for position, stage in enumerate(draft.plan.stages)
    )
    return plan


def _metric(criterion: CriterionDraft) -> MetricDefinition:
    key = slugify(criterion.metric.replace("_", "-")).replace("-", "_")[:80]
    metric, _ = MetricDefinition.objects.get_or_create(
        key=key,
        defaults={
            "name": key.replace("_", " ").capitalize()[:120],
            "unit": criterion.unit[:20],
            "bad_direction": BadDirection.LOWER
            if criterion.operator in ("<", "<=")
            else BadDirection.HIGHER,
        },
    )
    return metric


def _window(seconds: int, metric: str, notes: list[str]) -> timedelta:
    """A `for` window the criterion accepts: whole minutes, at most a day."""
    window = timedelta(minutes=math.ceil(seconds / 60)) if seconds else timedelta(0)
    if window > MAX_WINDOW:
        notes.append(f"{metric}: the window {window} is longer than a day; a day is kept.")
        window = MAX_WINDOW
    return window


def _save_criteria(
    grouped: list[_Grouped],
    plan: RolloutPlan,
    service: Service,
    options: SaveOptions,
    notes: list[str],
) -> list[MetricCriterion]:
    saved = []
    for group in grouped:
        warning, critical = group.warning, group.critical
        first = critical or warning
        assert first is not None
        metric = _metric(first)
        if first.source_kind in (SourceKind.PROMETHEUS, SourceKind.SQL):
            MetricSource.objects.update_or_create(
                metric=metric,
                service=service,
                defaults={
                    "kind": first.source_kind,
                    "query": first.query,
                    "base_url": (
                        options.prometheus_url or getattr(settings, "RUNBOOK_PROMETHEUS_URL", "")
                    )
                    if first.source_kind == SourceKind.PROMETHEUS
                    else "",
                    "database": _sql_database(options)
                    if first.source_kind == SourceKind.SQL
                    else "",
                },
            )
        seconds = max(c.for_seconds for c in (warning, critical) if c is not None)
        criterion = MetricCriterion(
            plan=plan,
            metric=metric,
            comparator=first.operator,
            warning_threshold=warning.threshold if warning else None,
            critical_threshold=critical.threshold if critical else None,
            for_window=_window(seconds, metric.key, notes),
            on_critical=critical.action if critical else CriticalAction.PAUSE,
            on_warning=warning.action if warning else WarningAction.NOTIFY,
            # A rollback trigger is an outage-class breach; the rest take the setting's default.
            incident_severity=Severity.SEV1
            if critical and critical.action == CriticalAction.ROLLBACK
            else "",
        )
        criterion.full_clean()
        criterion.save()
        saved.append(criterion)
    return saved


def _contact_for(target: str) -> Contact | None:
    name = target.strip()
    if not name or name.startswith("["):
        return None
    return (
        Contact.objects.filter(Q(name__iexact=name) | Q(role__iexact=name), active=True)
        .order_by("id")
        .first()
    )


def _save_policy(draft: Draft, service: Service) -> tuple[EscalationPolicy | None, list[str]]:
    levels: list[LevelDraft] = sorted(draft.escalation.levels, key=lambda lv: lv.position)
    if not levels:
        return None, []
    policy = EscalationPolicy.objects.create(
        name=_free_name(EscalationPolicy, f"{draft.title} escalation", _POLICY_NAME_MAX),
        description=f"Imported from {draft.source}.",
    )
    unfilled: list[str] = []
    previous: int | None = None
    for position, level in enumerate(levels, start=1):
        after = level.after_minutes
        if after is None:
            after = 0 if previous is None else previous + DEFAULT_LEVEL_GAP_MINUTES
        after = max(after, previous or 0)
        previous = after
        saved = EscalationLevel.objects.create(
            policy=policy,
            position=position,
            after_minutes=after,
            min_severity=Severity.SEV1 if level.critical_only else "",
        )
        contacts = []
        for target in level.targets:
            contact = _contact_for(target)
            if contact is None:
                unfilled.append(f"L{position} {target}")
            else:
                contacts.append(contact)
        saved.contacts.set(contacts)
    IncidentRouting.objects.update_or_create(service=service, defaults={"policy": policy})
    return policy, unfilled


def _exit_stage(plan: RolloutPlan) -> StageTemplate | None:
    """The stage a stage-exit checklist gates: the last one before full traffic."""
    stages = list(plan.stages.order_by("position"))
    before_full = [s for s in stages if s.traffic_percentage < 100]
    return (before_full or stages)[-1] if stages else None


def _save_checklists(
    checklists: list[DetectedChecklist],
    plan: RolloutPlan | None,
    actor: Actor,
    source: str,
    notes: list[str],
) -> list[str]:
    described = []
    for checklist in checklists:
        try:
            result = save_template_version(checklist, actor=actor, source=source)
        except ChecklistError as exc:
            raise ImportRefused([exc.message]) from exc
        described.append(result.describe())
        if plan is None:
            continue
        if checklist.kind == ChecklistKind.PERIODIC_REVIEW:
            notes.append(f"{checklist.name}: a periodic review is not part of a release's gate.")
            continue
        stage = _exit_stage(plan) if checklist.kind == ChecklistKind.STAGE_EXIT else None
        PlanChecklist.objects.get_or_create(
            plan=plan, template=result.template, stage_template=stage
        )
    return described

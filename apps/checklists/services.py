"""Checklist verbs: snapshot a release's checklists, open them, tick and untick items (by people,
by CI reports, in bulk), and save imported templates as new versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from apps.core.actors import Actor, ActorKind
from apps.releases import gate_inputs
from apps.releases.choices import EventVerb
from apps.releases.models import Event, Release

from .choices import ChecklistKind, ItemState
from .drafts import DetectedChecklist
from .models import (
    KEY_MAX_LENGTH,
    Checklist,
    ChecklistItem,
    ChecklistItemChange,
    ChecklistTemplate,
    PlanChecklist,
    TemplateItem,
    TemplateSection,
    key_validator,
)
from .runbook import ParsedRunbook

TICK_PERM = "checklists.tick_checklistitem"

# A release's checklists are listed in the order they are met, which is the kinds' order.
KIND_ORDER = {kind: position for position, kind in enumerate(ChecklistKind)}


class ChecklistError(Exception):
    """The change is not possible now (HTTP 409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ChecklistForbidden(ChecklistError):
    """The actor may not make this change (HTTP 403)."""


class UnknownCheckKey(ChecklistError):
    """No item of the release has this key (HTTP 400); says which keys it knows."""

    def __init__(self, key: str, known_keys: list[str]) -> None:
        known = ", ".join(known_keys) if known_keys else "none (it has no automated items)"
        super().__init__(
            f"This release has no automated item with key {key!r}. Known keys: {known}."
        )
        self.key = key
        self.known_keys = known_keys


# --- a release's checklists -------------------------------------------------------------------


def snapshot_checklists(release: Release) -> list[Checklist]:
    """Copy the plan's checklist templates into the release; later template edits never reach it.

    Pre-deployment and stage-exit checklists are open at once (they gate start and stage exits);
    post-deployment and review checklists are copied now but open when the release completes.
    """
    links = list(
        PlanChecklist.objects.filter(plan_id=release.plan_id)
        .select_related("template", "stage_template")
        .prefetch_related(
            Prefetch(
                "template__sections",
                queryset=TemplateSection.objects.order_by("position").prefetch_related(
                    Prefetch("items", queryset=TemplateItem.objects.order_by("position"))
                ),
            )
        )
    )
    stages = {stage.template_id: stage for stage in release.stages.all() if stage.template_id}
    links.sort(
        key=lambda link: (
            KIND_ORDER[link.template.kind],
            link.stage_template.position if link.stage_template else -1,
            link.pk,
        )
    )
    now = timezone.now()
    created: list[Checklist] = []
    for position, link in enumerate(links):
        template = link.template
        stage = None
        if template.kind == ChecklistKind.STAGE_EXIT:
            stage = stages.get(link.stage_template_id)
            if stage is None:  # a link without its stage is refused by PlanChecklist.clean
                continue
        checklist = Checklist.objects.create(
            release=release,
            template=template,
            name=template.name,
            template_version=template.version,
            kind=template.kind,
            stage=stage,
            position=position,
            created_at=now,
            opened_at=None if template.kind in ChecklistKind.open_on_completion() else now,
        )
        items = [
            ChecklistItem(
                checklist=checklist,
                section=section.name,
                text=item.text,
                required=item.required,
                key=item.key,
            )
            for section in template.sections.all()
            for item in section.items.all()
        ]
        for index, item in enumerate(items):
            item.position = index
        ChecklistItem.objects.bulk_create(items)
        created.append(checklist)
    return created


def open_on_completion(release: Release, *, actor: Actor, now: datetime) -> list[Event]:
    """Open the release's post-deployment and review checklists; one Event for each."""
    waiting = list(
        release.checklists.filter(
            kind__in=ChecklistKind.open_on_completion(), opened_at__isnull=True
        ).with_progress()
    )
    # Conditional: a checklist is opened once even if this ran twice.
    Checklist.objects.filter(pk__in=[c.pk for c in waiting], opened_at__isnull=True).update(
        opened_at=now
    )
    return [
        Event.record(
            release,
            EventVerb.CHECKLIST_OPENED,
            actor,
            data={"checklist": c.name, "kind": c.kind, "items": c.item_total},
        )
        for c in waiting
    ]


def reopen_stage_exits(
    release: Release, *, positions: range, actor: Actor, now: datetime, reason: str
) -> list[dict[str, object]]:
    """Untick the done items of the exit checklists of the release's stages at `positions`
    (inside a step back or a send-back, which runs those stages again): what was checked on
    leaving them the first time says nothing of the next time. Each item's history and the
    timeline keep who ticked it and that the step reopened it; the gate then waits for the
    items again. Returns, per checklist reopened, its name, stage and how many items."""
    items = list(
        ChecklistItem.objects.filter(
            checklist__release=release,
            checklist__kind=ChecklistKind.STAGE_EXIT,
            checklist__stage__position__in=positions,
            state=ItemState.DONE,
        )
        .select_related("checklist__stage")
        .order_by("checklist__position", "checklist_id", "position")
    )
    changes = []
    reopened: dict[int, dict[str, object]] = {}
    for item in items:
        item.state, item.changed_at = ItemState.OPEN, now
        item.comment, item.evidence_url = reason, ""
        item.stamp(actor)
        change = ChecklistItemChange(
            item=item,
            state=ItemState.OPEN,
            previous_state=ItemState.DONE,
            comment=reason,
            created_at=now,
        )
        change.stamp(actor)
        changes.append(change)
        Event.record(
            release,
            EventVerb.CHECKLIST_ITEM_REOPENED,
            actor,
            reason=reason,
            stage=item.checklist.stage,
            data={"checklist": item.checklist.name, "item": item.text, "key": item.key},
        )
        entry = reopened.setdefault(
            item.checklist_id,
            {"checklist": item.checklist.name, "stage": item.checklist.stage.name, "items": 0},
        )
        entry["items"] += 1  # type: ignore[operator]
    ChecklistItem.objects.bulk_update(
        items,
        [
            "state",
            "changed_at",
            "comment",
            "evidence_url",
            "actor_kind",
            "actor_name",
            "actor_user",
            "actor_token_id",
        ],
    )
    ChecklistItemChange.objects.bulk_create(changes)
    return list(reopened.values())


def left_for_ci(item: ChecklistItem, actor: Actor) -> bool:
    """Whether a tick of this item is CI's alone: an automated item ticked by a person.

    The item's tick stands for CI's evidence (a test run, a scan); a person's tick would hide
    that CI never reported it. There is no per-item override: when CI cannot report, a release
    manager forces the gate with a reason, which records the open item on the timeline. A person
    may still untick an automated item (asking CI to report again is always safe).
    """
    return item.is_automated and actor.kind == ActorKind.USER


def _authorize(actor: Actor, item: ChecklistItem, *, done: bool) -> None:
    release = item.checklist.release
    if not actor.may_touch_service(release.service_id):
        raise ChecklistForbidden(f"This token may not act on service {release.service.slug!r}.")
    if actor.kind == ActorKind.TOKEN and not item.key:
        raise ChecklistForbidden(
            f"{item.text!r} is a manual item: a person ticks it in rolloutdesk, not a token."
        )
    if actor.kind == ActorKind.USER and not actor.has_perm(TICK_PERM):
        raise ChecklistForbidden(f"{actor.name} may not tick checklist items.")
    if done and left_for_ci(item, actor):
        raise ChecklistForbidden(
            f"{item.text!r} is automated: CI ticks it when it reports {item.key!r}, with its "
            "evidence. If CI cannot, a release manager may force the gate with a reason."
        )


def set_item_state(
    item: ChecklistItem,
    *,
    done: bool,
    actor: Actor,
    comment: str = "",
    evidence_url: str = "",
    passed: bool | None = None,
) -> ChecklistItemChange:
    """Tick (done=True) or untick an item, recording who, when, why and the evidence.

    Every call is kept in the item's history, a repeated report too; a change of state also
    writes an Event on the release's timeline.
    """
    with transaction.atomic():
        locked = (
            ChecklistItem.objects.select_for_update(of=("self",))
            .select_related("checklist__release__service", "checklist__stage")
            .get(pk=item.pk)
        )
        _authorize(actor, locked, done=done)
        checklist = locked.checklist
        if not checklist.is_open:
            raise ChecklistError(
                f"The checklist {checklist.name!r} opens when the release completes; "
                "its items cannot be ticked before."
            )
        now = timezone.now()
        previous = locked.state
        locked.state = ItemState.DONE if done else ItemState.OPEN
        locked.stamp(actor)
        locked.changed_at, locked.comment, locked.evidence_url = now, comment, evidence_url
        locked.save()
        change = ChecklistItemChange(
            item=locked,
            state=locked.state,
            previous_state=previous,
            passed=passed,
            comment=comment,
            evidence_url=evidence_url,
            created_at=now,
        )
        change.stamp(actor)
        change.save()
        gate_inputs.changed(releases=[checklist.release_id])
        if previous != locked.state:
            Event.record(
                checklist.release,
                EventVerb.CHECKLIST_ITEM_DONE if done else EventVerb.CHECKLIST_ITEM_REOPENED,
                actor,
                reason=comment,
                stage=checklist.stage,
                data={
                    "checklist": checklist.name,
                    "item": locked.text,
                    "key": locked.key,
                    "evidence_url": evidence_url,
                },
            )
    item.refresh_from_db()
    return change


def report_check(
    release: Release,
    *,
    key: str,
    passed: bool,
    actor: Actor,
    detail: str = "",
    url: str = "",
) -> list[ChecklistItemChange]:
    """A CI report: tick (passed) or untick every open-checklist item of the release with `key`."""
    if not actor.may_touch_service(release.service_id):
        raise ChecklistForbidden(f"This token may not act on service {release.service.slug!r}.")
    items = list(
        ChecklistItem.objects.filter(checklist__release=release, key=key)
        .select_related("checklist")
        .order_by("checklist__position", "position")
    )
    if not items:
        known = ChecklistItem.objects.filter(checklist__release=release).exclude(key="")
        raise UnknownCheckKey(key, sorted(set(known.values_list("key", flat=True))))
    reportable = [item for item in items if item.checklist.is_open]
    if not reportable:
        names = ", ".join(sorted({item.checklist.name for item in items}))
        raise ChecklistError(
            f"Key {key!r} belongs to {names}, which opens when the release completes."
        )
    with transaction.atomic():
        return [
            set_item_state(
                item, done=passed, actor=actor, comment=detail, evidence_url=url, passed=passed
            )
            for item in reportable
        ]


@dataclass
class BulkResult:
    """What a bulk "mark done" did."""

    done: int = 0
    already_done: int = 0
    not_open: int = 0
    # Open automated items a person's bulk tick skipped: CI ticks them (see left_for_ci).
    left_for_ci: int = 0


def mark_done(items: QuerySet[ChecklistItem], *, actor: Actor, comment: str = "") -> BulkResult:
    """Tick every open item among `items` whose checklist is open and that `actor` may tick
    (a person: manual items only), all or nothing."""
    result = BulkResult()
    with transaction.atomic():
        for item in items.select_related("checklist").order_by("checklist_id", "position"):
            if item.is_done:
                result.already_done += 1
            elif not item.checklist.is_open:
                result.not_open += 1
            elif left_for_ci(item, actor):
                result.left_for_ci += 1
            else:
                set_item_state(item, done=True, actor=actor, comment=comment)
                result.done += 1
    return result


# --- templates ---------------------------------------------------------------------------------


@dataclass
class ImportResult:
    """One template saved by an import, and what happened to the version it replaced."""

    template: ChecklistTemplate
    item_count: int
    replaced: ChecklistTemplate | None = None
    relinked_plans: int = 0
    # Plan links left on the old version because the new kind does not fit where they use it.
    stranded_plans: int = 0

    def describe(self) -> str:
        text = f"{self.template} [{self.template.get_kind_display()}], {self.item_count} items"
        if self.replaced is not None:
            text += f", replacing v{self.replaced.version}"
            text += f"; {self.relinked_plans} plan link(s) moved to it"
        if self.stranded_plans:
            text += (
                f"; {self.stranded_plans} plan link(s) stay on the old version because the "
                "kind changed: review them on the plans"
            )
        return text


def validate_checklist(checklist: DetectedChecklist) -> None:
    """Refuse a checklist that would save badly, naming the checklist and the field."""
    label = checklist.name or checklist.heading
    errors: list[str] = []
    if not checklist.name.strip():
        errors.append(f"{checklist.heading!r}: give the checklist a name.")
    if len(checklist.name) > ChecklistTemplate._meta.get_field("name").max_length:
        errors.append(f"{label!r}: the name is longer than 200 characters.")
    if checklist.kind not in ChecklistKind.values:
        errors.append(f"{label!r}: unknown kind {checklist.kind!r}.")
    if not checklist.item_count:
        errors.append(f"{label!r} has no items.")
    for section in checklist.sections:
        for item in section.items:
            if not item.key:
                continue
            if len(item.key) > KEY_MAX_LENGTH:
                errors.append(f"{label!r}: key {item.key!r} is longer than {KEY_MAX_LENGTH}.")
                continue
            try:
                key_validator(item.key)
            except ValidationError:
                errors.append(
                    f"{label!r}: key {item.key!r} for {item.text!r}: {key_validator.message}"
                )
    if errors:
        raise ValidationError(errors)


def save_template_version(
    checklist: DetectedChecklist, *, actor: Actor, source: str = ""
) -> ImportResult:
    """Save a checklist as the next version of the template with its name (v1 if new).

    The previous version stays for history and for the releases copied from it; the plans that
    used it move to the new version when the kind still fits where they use it.
    """
    validate_checklist(checklist)
    name = checklist.name.strip()
    with transaction.atomic():
        versions = list(
            ChecklistTemplate.objects.select_for_update().filter(name=name).order_by("-version")
        )
        replaced = next((t for t in versions if t.is_current), None)
        ChecklistTemplate.objects.filter(name=name, is_current=True).update(is_current=False)
        try:
            with transaction.atomic():
                template = ChecklistTemplate.objects.create(
                    name=name,
                    version=versions[0].version + 1 if versions else 1,
                    kind=checklist.kind,
                    source=source[:255],
                    created_by=actor.name,
                )
        except IntegrityError as exc:
            raise ChecklistError(
                f"{name!r} was imported by someone else at the same moment; import it again."
            ) from exc
        for section_position, detected in enumerate(checklist.sections):
            section = TemplateSection.objects.create(
                template=template, position=section_position, name=detected.name[:200]
            )
            TemplateItem.objects.bulk_create(
                TemplateItem(
                    template=template,
                    section=section,
                    position=position,
                    text=item.text,
                    required=item.required,
                    key=item.key,
                )
                for position, item in enumerate(detected.items)
            )
        result = ImportResult(template, checklist.item_count, replaced)
        if replaced is not None:
            # A stage-exit link names a stage; the other kinds must not: move only what fits.
            older = PlanChecklist.objects.filter(template__name=name).exclude(template=template)
            fits = {"stage_template__isnull": template.kind != ChecklistKind.STAGE_EXIT}
            result.relinked_plans = older.filter(**fits).update(template=template)
            result.stranded_plans = older.count()
    return result


def import_runbook(
    parsed: ParsedRunbook,
    *,
    actor: Actor,
    chosen: list[DetectedChecklist] | None = None,
) -> list[ImportResult]:
    """Save the chosen checklists of a parsed runbook (all by default) as templates, or none."""
    checklists = parsed.checklists if chosen is None else chosen
    if not checklists:
        raise ValidationError("Choose at least one checklist to import.")
    names = [c.name.strip() for c in checklists]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationError(f"Two checklists would be named {', '.join(map(repr, duplicates))}.")
    # One transaction: a checklist refused by save_template_version undoes those saved before it.
    with transaction.atomic():
        return [save_template_version(c, actor=actor, source=parsed.source) for c in checklists]

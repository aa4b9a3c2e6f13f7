"""Gate check: the checklists gating the next step must have every required item done.

Pre-deployment checklists gate `start`; a stage's exit checklists gate leaving that stage (to the
next one, or completing after the last). Post-deployment and review checklists gate nothing.
`gating_now` says which ones hold the step; the pages ask it too (`gates_now`), so the checklist
they show in red is the one the gate waits on.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch

from apps.checklists.choices import ChecklistKind
from apps.checklists.models import Checklist, ChecklistItem
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Release, Stage

# How many open items a blocker names before it says "and N more".
FIRST_OPEN_SHOWN = 3


def gating_now(release: Release, stage: Stage | None) -> tuple[str, int | None] | None:
    """The (kind, stage id) of the checklists holding the release's next step; None if none do.

    `stage` is the gate's: the current stage while the release runs or is paused, else None.
    """
    if release.status == ReleaseStatus.PLANNED:
        return ChecklistKind.PRE_DEPLOYMENT, None
    if release.status in ReleaseStatus.active() and stage is not None:
        return ChecklistKind.STAGE_EXIT, stage.pk
    return None


def gates_now(checklist: Checklist, release: Release, stage: Stage | None) -> bool:
    """Whether this checklist of the release holds its next step (once it is open)."""
    return gating_now(release, stage) == (checklist.kind, checklist.stage_id)


def check_checklists(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """One blocker per gating checklist with required items open: its count and first items."""
    gating = gating_now(release, stage)
    if gating is None:
        return []
    kind, stage_id = gating
    checklists = (
        Checklist.objects.filter(
            kind=kind, stage_id=stage_id, release_id=release.pk, opened_at__isnull=False
        )
        .with_progress()
        .filter(required_open__gt=0)
        .prefetch_related(
            Prefetch(
                "items",
                queryset=ChecklistItem.objects.required_open().order_by("position")[
                    :FIRST_OPEN_SHOWN
                ],
                to_attr="first_open",
            )
        )
        .order_by("position", "id")
    )
    return [_blocker(checklist) for checklist in checklists]


def _blocker(checklist: Checklist) -> Blocker:
    count = checklist.required_open
    names = "; ".join(item.text for item in checklist.first_open)
    more = f"; and {count - len(checklist.first_open)} more" if count > FIRST_OPEN_SHOWN else ""
    return Blocker(
        BlockerKind.CHECKLIST,
        f"Checklist {checklist.name!r} ({checklist.item_done}/{checklist.item_total} done) has "
        f"{count} required item{'s' if count != 1 else ''} open: {names}{more}.",
    )

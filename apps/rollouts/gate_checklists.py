"""Gate check: the checklists gating the next step must have every required item done.

Pre-deployment checklists gate `start`; a stage's exit checklists gate leaving that stage (to the
next one, or completing after the last). Post-deployment and review checklists gate nothing.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, Q

from apps.checklists.choices import ChecklistKind
from apps.checklists.models import Checklist, ChecklistItem
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release, Stage

from .blockers import Blocker

# How many open items a blocker names before it says "and N more".
FIRST_OPEN_SHOWN = 3


def check_checklists(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """One blocker per gating checklist with required items open: its count and first items."""
    if release.status == ReleaseStatus.PLANNED:
        gating = Q(kind=ChecklistKind.PRE_DEPLOYMENT)
    elif release.status in ReleaseStatus.active() and stage is not None:
        gating = Q(kind=ChecklistKind.STAGE_EXIT, stage_id=stage.pk)
    else:
        return []
    checklists = (
        Checklist.objects.filter(gating, release_id=release.pk, opened_at__isnull=False)
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
        "checklist",
        f"Checklist {checklist.name!r} ({checklist.item_done}/{checklist.item_total} done) has "
        f"{count} required item{'s' if count != 1 else ''} open: {names}{more}.",
    )

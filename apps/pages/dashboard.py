"""The dashboard: every running or paused release by service, with its gate light, what waits for
the signed-in person, planned releases, and what finished lately.

The gate is asked once per running, paused or listed planned release (it is the one place that
decides); everything else is read in a fixed number of queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from django.utils import timezone

from apps.jobs import heartbeat
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.models import Release, Service
from apps.rollouts import gate
from apps.signoffs import services as signoffs
from apps.signoffs.choices import Decision
from apps.signoffs.models import ReleaseSignOffRule, SignOff

from . import incidents
from .presenters import Light, gate_light, soak_left, stage_progress

PLANNED_SHOWN = 20
FINISHED_SHOWN = 15
FINISHED_WITHIN = timedelta(days=14)


@dataclass
class Row:
    """One release on the dashboard."""

    release: Release
    verdict: gate.Verdict
    light: Light
    progress: str
    soak: str
    waiting_for_me: bool = False


@dataclass
class ServiceGroup:
    service: Service
    rows: list[Row]
    open_incidents: int


def waiting_for(user: Any, rows: list[Row]) -> set[int]:
    """Releases whose current gate still needs a go this person may give and has not given.

    Reads the person's groups, the matching rules and their standing sign-offs: three queries.
    """
    candidates = [r for r in rows if any(b.kind == BlockerKind.SIGNOFF for b in r.verdict.blockers)]
    if not candidates or not user.is_authenticated:
        return set()
    group_ids = set(user.groups.values_list("id", flat=True))
    ids = [r.release.pk for r in candidates]
    rules = {
        (release_id, stage_id): author_may_approve
        for release_id, stage_id, author_may_approve in ReleaseSignOffRule.objects.filter(
            release_id__in=ids, groups__id__in=group_ids
        )
        .values_list("release_id", "stage_id", "author_may_approve")
        .distinct()
    }
    signed = set(
        SignOff.objects.standing()
        .filter(release_id__in=ids, signer_id=user.pk)
        .values_list("release_id", "gate_key")
    )
    found = set()
    for row in candidates:
        release = row.release
        current = signoffs.current_gate(release)
        if current is None:
            continue
        key = (release.pk, current.stage.pk if current.stage else None)
        if key not in rules or (release.pk, current.key) in signed:
            continue
        refusal = signoffs.sign_refusal(
            release, user, Decision.GO, in_groups=True, author_may_approve=rules[key]
        )
        if refusal:
            continue  # their go would not count
        found.add(release.pk)
    return found


def build(user: Any) -> dict[str, Any]:
    """The dashboard's context."""
    now = timezone.now()
    active = list(
        Release.objects.active().with_related().order_by("service__name", "started_at", "pk")
    )
    planned = list(
        Release.objects.filter(status=ReleaseStatus.PLANNED)
        .with_related()
        .order_by("-created_at", "-pk")[:PLANNED_SHOWN]
    )
    finished = list(
        Release.objects.filter(
            status__in=ReleaseStatus.finished(), finished_at__gte=now - FINISHED_WITHIN
        )
        .with_related()
        .order_by("-finished_at", "-pk")[:FINISHED_SHOWN]
    )
    rows = [_row(release, now) for release in active]
    planned_rows = [_row(release, now) for release in planned]
    mine = waiting_for(user, rows + planned_rows)
    for row in rows + planned_rows:
        row.waiting_for_me = row.release.pk in mine
    counts = incidents.open_counts(active + planned)
    groups = [
        ServiceGroup(
            service=rows_[0].release.service, rows=rows_, open_incidents=counts.get(sid, 0)
        )
        for sid, group in groupby(rows, key=lambda r: r.release.service_id)
        if (rows_ := list(group))
    ]
    return {
        "now": now,
        "groups": groups,
        "planned": planned_rows,
        "finished": finished,
        "waiting": [r for r in rows + planned_rows if r.waiting_for_me],
        "summary": {
            "running": sum(r.release.status == ReleaseStatus.IN_PROGRESS for r in rows),
            "paused": sum(r.release.status == ReleaseStatus.PAUSED for r in rows),
            "red": sum(r.light.colour == "red" for r in rows),
            "green": sum(r.light.colour == "green" for r in rows),
        },
        "incidents_installed": incidents.installed(),
        "open_incidents": incidents.open_total(),
        "finished_within_days": FINISHED_WITHIN.days,
        # Beat or the workers stopped, or a job crashes every time: nothing on this page would
        # move (no checks, no auto-advance, no pages) without saying why.
        "stale_jobs": heartbeat.stale_jobs(now),
    }


def _row(release: Release, now: datetime) -> Row:
    verdict = gate.evaluate(release, now=now)
    return Row(
        release=release,
        verdict=verdict,
        light=gate_light(verdict),
        progress=stage_progress(release),
        soak=soak_left(release, release.current_stage, now),
    )

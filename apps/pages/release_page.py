"""Everything the release page shows, read in a fixed number of queries.

The gate's verdict comes from apps.rollouts.gate (the one place that decides); checklists,
sign-offs and metric checks are read through their apps' QuerySets and services. Nothing here
grows its query count with the number of stages, items, sign-offs, samples or events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps as django_apps
from django.db.models import Prefetch
from django.utils import timezone

from apps.checklists.choices import ChecklistKind
from apps.checklists.models import Checklist, ChecklistItem
from apps.checklists.services import TICK_PERM
from apps.checks.selection import criteria_for_plans
from apps.checks.standing import latest_results
from apps.checks.success import outlook
from apps.core.actors import ActorKind
from apps.core.durations import format_duration
from apps.releases.choices import EventVerb, ReleaseStatus, StageStatus
from apps.releases.models import Event, Release, Stage
from apps.rollouts import breach_response, gate
from apps.signoffs import services as signoffs
from apps.signoffs.choices import Decision
from apps.signoffs.models import ReleaseSignOffRule

from . import charts, incidents
from .presenters import (
    blocker_rows,
    checklist_status,
    describe_event,
    gate_light,
    soak_left,
    stage_progress,
    transition_actions,
)

EVENTS_SHOWN = 100


@dataclass
class StageRow:
    """One stage in the timeline, with what its exit needs."""

    stage: Stage
    number: int
    current: bool
    soaked: str
    min_soak: str
    exit_needs: list[str]

    @property
    def outcome(self) -> str:
        if self.current:
            return "current"
        return self.stage.get_status_display().lower()


def _stage_rows(
    release: Release,
    stages: list[Stage],
    checklists: list[Checklist],
    rules: list[ReleaseSignOffRule],
    now: datetime,
) -> list[StageRow]:
    needs: dict[int, list[str]] = {}
    for checklist in checklists:
        if checklist.kind == ChecklistKind.STAGE_EXIT and checklist.stage_id:
            needs.setdefault(checklist.stage_id, []).append(f"checklist “{checklist.name}”")
    for rule in rules:
        if rule.stage_id:
            needs.setdefault(rule.stage_id, []).append(f"sign-off: {rule.describe()}")
    rows = []
    for stage in stages:
        current = release.status in ReleaseStatus.active() and stage.pk == release.current_stage_id
        if stage.entered_at:
            paused_at = release.paused_at if current else None
            soaked = format_duration(stage.soaked(now, paused_at))
        else:
            soaked = ""
        rows.append(
            StageRow(
                stage=stage,
                number=stage.position + 1,
                current=current,
                soaked=soaked,
                min_soak=format_duration(stage.min_soak) if stage.min_soak else "",
                exit_needs=needs.get(stage.pk, []),
            )
        )
    return rows


def _checklists(release: Release) -> list[Checklist]:
    """The release's checklists with their progress and items: two queries."""
    return list(
        Checklist.objects.filter(release_id=release.pk)
        .with_progress()
        .select_related("stage")
        .prefetch_related(
            Prefetch("items", queryset=ChecklistItem.objects.order_by("position", "id"))
        )
        .order_by("position", "id")
    )


def _signoffs(release: Release, user: Any, now: datetime) -> dict[str, Any]:
    status = signoffs.gate_status(release, now=now, with_history=True)
    rules = list(
        ReleaseSignOffRule.objects.filter(release_id=release.pk)
        .select_related("stage")
        .prefetch_related("groups")
        .order_by("stage__position")
    )
    mine = go_refusal = no_go_refusal = None
    if status is not None:
        mine = next((s for s in status.assessment.standing if s.signer_id == user.pk), None)
        go_refusal = signoffs.why_cannot_sign(status, user, Decision.GO)
        no_go_refusal = signoffs.why_cannot_sign(status, user, Decision.NO_GO)
        history = status.history
    else:
        history = list(release.signoffs.select_related("signer", "stage"))
    return {
        "status": status,
        "rules": rules,
        "mine": mine,
        "go_refusal": go_refusal,
        "no_go_refusal": no_go_refusal,
        "history": history,
        "standing": set(status.assessment.standing) if status else set(),
    }


def _metrics(release: Release, stages: list[Stage], range_key: str, now: datetime) -> Any:
    criteria = criteria_for_plans([release.plan_id])
    latest = {r.criterion_id: r for r in latest_results(release)}
    for result in latest.values():
        # The power figure under the chart: traffic and time still needed, and whether the
        # soak (or a success criterion's decision window) is long enough.
        seen = outlook(result.criterion, result, release, now)
        result.outlook = seen.text() if seen is not None else ""
    return charts.release_charts(release, criteria, latest, stages, range_key=range_key, now=now)


# The event that put a release into each stopped status: its reason is why, shown at the top.
STOPPED_BY = {
    ReleaseStatus.PAUSED: EventVerb.PAUSED,
    ReleaseStatus.ROLLED_BACK: EventVerb.ROLLED_BACK,
    ReleaseStatus.ABORTED: EventVerb.ABORTED,
}


@dataclass(frozen=True)
class Why:
    """Why a release is paused, rolled back or aborted: who (a person, or the metric checks) and
    the reason, which for an automatic stop names the criterion, the value and the threshold."""

    event: Event
    automatic: bool
    stage: str


def _why(release: Release) -> Why | None:
    verb = STOPPED_BY.get(release.status)
    if verb is None:
        return None
    events = Event.objects.filter(release_id=release.pk, verb=verb)
    event = events.order_by("-created_at", "-id").first()
    if event is None:
        return None
    return Why(
        event=event,
        # The metric checks' own action (breach_response), not a person or a script using the API.
        automatic=event.actor_kind == ActorKind.SYSTEM
        and event.actor_name.endswith(breach_response.ACTOR_NAME),
        stage=(event.data or {}).get("stage", ""),
    )


def build(
    release: Release, user: Any, *, range_key: str = "", show_all_events: bool = False
) -> dict[str, Any]:
    """The release page's context."""
    now = timezone.now()
    verdict = gate.evaluate(release, now=now)
    stages = list(release.stages.order_by("position"))
    checklists = _checklists(release)
    signoff = _signoffs(release, user, now)
    events = Event.objects.filter(release_id=release.pk).timeline().order_by("-created_at", "-id")
    if not show_all_events:
        events = events[: EVENTS_SHOWN + 1]
    event_rows = [describe_event(e) for e in events]
    more_events = len(event_rows) > EVENTS_SHOWN and not show_all_events
    if more_events:
        event_rows = event_rows[:EVENTS_SHOWN]
    may_tick = user.has_perm(TICK_PERM)
    for checklist in checklists:
        checklist.status = checklist_status(checklist, release, verdict)
    return {
        "release": release,
        "why": _why(release),
        "now": now,
        "seen": f"{release.status}:{release.current_stage_id or ''}",
        "verdict": verdict,
        "light": gate_light(verdict),
        "blockers": blocker_rows(release, verdict),
        "progress": stage_progress(release),
        "soak": soak_left(release, release.current_stage, now),
        "stages": _stage_rows(release, stages, checklists, signoff["rules"], now),
        "checklists": checklists,
        "may_tick": may_tick,
        "tick_refusal": ""
        if may_tick
        else "Ticking items needs the Approvers or Release managers role.",
        "signoff": signoff,
        "charts": _metrics(release, stages, range_key, now),
        "ranges": charts.RANGE_LABELS,
        "events": event_rows,
        "more_events": more_events,
        "actions": transition_actions(release, verdict, stages, user),
        "incidents": incidents.for_release(release),
        "incidents_installed": incidents.installed(),
        "finished": release.status in ReleaseStatus.finished(),
        "stage_status": StageStatus,
        "checks_installed": django_apps.is_installed("apps.checks"),
    }

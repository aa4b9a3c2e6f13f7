"""Keeping the gate's answer: recompute a release's verdict when an input changes, read it cheaply.

`gate.evaluate` stays the one place that decides; this module stores its result (KeptVerdict)
so that CI's polls, the traffic lookup and the dashboard read one row. It is recomputed:

- after every change of an input, on commit: the code making the change calls
  `apps.releases.gate_inputs.changed()` (transitions, registration, checklist ticks, sign-offs,
  freeze windows, check runs, incidents, artifact changes), which this module serves;
- when time alone changes it: `next_change_at` is the exact moment (a soak ending, a freeze
  starting or ending, a sign-off lapsing, a metric alarm ageing out of the soak window, the
  next tick for traffic measured elsewhere); the tick recomputes the rows due (`refresh_due`),
  and a reader finding its row due recomputes it first, so no reader sees a stale answer.

Transitions never trust the kept row: they evaluate afresh under the row lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.db.models.signals import post_delete
from django.utils import timezone

from apps.checks.choices import Verdict as CheckVerdict
from apps.checks.models import CheckResult
from apps.checks.standing import soak_window_start
from apps.checks.success import decision_deadlines
from apps.core import stamps
from apps.jobs.runner import job
from apps.releases import gate_inputs
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.models import Environment, Release, Stage
from apps.signoffs import services as signoffs
from apps.signoffs.choices import FreezeRecurrence
from apps.signoffs.models import FreezeWindow, SignOff

from . import gate
from .models import GateState, KeptVerdict

logger = logging.getLogger(__name__)

# Blockers whose answer comes from outside (a provider's traffic count): asked again each tick.
MEASURED_ELSEWHERE = frozenset({BlockerKind.TRAFFIC})
METRIC_KINDS = frozenset(
    {BlockerKind.METRICS, BlockerKind.METRICS_PENDING, BlockerKind.SUCCESS_UNDECIDED}
)
TICK = timedelta(minutes=1)


def state_of(step: str, kinds: Iterable[str]) -> GateState:
    """Green when the gate is open, amber when it only waits, red when something is wrong
    (gate.light_of, the one rule)."""
    return GateState(gate.light_of(step, kinds))


def top_kind(kinds: Iterable[str]) -> str:
    """The most important kind among the blockers (BlockerKind.rank), "" when there are none."""
    return min(kinds, key=BlockerKind.rank, default="")


def document(verdict: gate.Verdict) -> dict[str, Any]:
    """The gate endpoint's document for a verdict (what is kept, and what the API answers)."""
    return {
        "can_advance": verdict.can_advance,
        "step": verdict.step,
        "stage": verdict.stage.name if verdict.stage else None,
        "status": verdict.release.status,
        "blockers": [b.as_dict() for b in verdict.blockers],
    }


def traffic_document(release: Release) -> dict[str, Any]:
    """The traffic endpoint's document: the percentage the release serves now."""
    return {
        "percentage": release.traffic_percentage,
        "status": release.status,
        "stage": release.current_stage.name if release.current_stage else None,
    }


def traffic_in(release: Release, environment: Environment) -> dict[str, Any]:
    """The traffic endpoint's document for one environment (`?environment=`): the percentage
    the release serves there (Release.percentage_in) and the stage that sets it: the current
    one when it runs there, the environment's last when the release was promoted past it."""
    stages = [s for s in release.stages.all() if s.environment_id == environment.pk]
    percentage = release.percentage_in(environment) or 0
    current = release.current_stage
    if current is not None and current.environment_id == environment.pk:
        stage = current.name  # as traffic_document names it
    else:
        stage = stages[-1].name if percentage == 100 else None
    return {
        "percentage": percentage,
        "status": release.status,
        "stage": stage,
        "environment": environment.slug,
    }


# --- when time alone changes the answer ------------------------------------------------------


def _next_weekly_start(window: FreezeWindow, now: datetime) -> datetime:
    local = now.astimezone(window.zone)
    for days in range(8):
        day = local.date() + timedelta(days=days)
        if day.weekday() != window.weekly_start_day:
            continue
        start = datetime.combine(day, window.weekly_start_time, tzinfo=window.zone)
        if start > now:
            return start
    return now + timedelta(days=7)  # not reached: a weekday recurs within eight days


def _freeze_changes(release: Release, now: datetime) -> list[datetime]:
    """When a freeze covering the release starts or ends next."""
    if release.status not in (ReleaseStatus.PLANNED, ReleaseStatus.IN_PROGRESS):
        return []
    moments = []
    for window in FreezeWindow.objects.covering(release.service_id, release.step_environment_id()):
        until = window.active_until(now)
        if until is not None:
            moments.append(until)
        elif window.recurrence == FreezeRecurrence.ONE_OFF:
            if window.starts_at > now:
                moments.append(window.starts_at)
        else:
            moments.append(_next_weekly_start(window, now))
    return moments


def _signoff_lapses(release: Release, now: datetime) -> list[datetime]:
    """When a standing sign-off of the current gate stops counting (its rule's validity)."""
    current = signoffs.current_gate(release)
    if current is None:
        return []
    rule = signoffs.rule_for(release, current)
    if rule is None or rule.valid_for is None:
        return []
    standing = SignOff.objects.filter(release=release, gate_key=current.key).standing()
    return [
        at + rule.valid_for
        for at in standing.values_list("created_at", flat=True)
        if at + rule.valid_for > now
    ]


def _metric_alarms_age_out(release: Release, stage: Stage, now: datetime) -> list[datetime]:
    """When the oldest warn or fail in the soak window leaves it (old alarms age out)."""
    if stage.min_soak <= timedelta(0):
        return []
    oldest = CheckResult.objects.filter(
        release_id=release.pk,
        at__gte=soak_window_start(stage, now),
        verdict__in=[CheckVerdict.WARN, CheckVerdict.FAIL],
    ).aggregate(oldest=Min("at"))["oldest"]
    return [oldest + stage.min_soak] if oldest is not None else []


def next_change(verdict: gate.Verdict, now: datetime) -> datetime | None:
    """The first moment at which time alone may change this verdict; None if nothing will."""
    release, stage = verdict.release, verdict.stage
    kinds = {b.kind for b in verdict.blockers}
    moments: list[datetime] = []
    if release.status == ReleaseStatus.IN_PROGRESS and stage is not None:
        if BlockerKind.SOAK in kinds:
            moments.append(now + (stage.min_soak - stage.soaked(now, release.paused_at)))
        if BlockerKind.METRICS in kinds:
            moments += _metric_alarms_age_out(release, stage, now)
        if BlockerKind.METRICS_PENDING in kinds:
            # A success criterion still waiting turns into a person's decision at its deadline.
            moments += decision_deadlines(release, stage)
    if kinds & MEASURED_ELSEWHERE:
        moments.append(now + TICK)
    if verdict.step:
        moments += _freeze_changes(release, now)
        moments += _signoff_lapses(release, now)
    future = [m for m in moments if m > now]
    return min(future, default=None)


# --- keeping ---------------------------------------------------------------------------------


def _locked_row(release_id: int, now: datetime) -> KeptVerdict:
    """The release's kept row, locked until the transaction ends (made, empty, if missing)."""
    row = KeptVerdict.objects.select_for_update().filter(pk=release_id).first()
    if row is None:
        try:
            with transaction.atomic():
                KeptVerdict.objects.create(
                    release_id=release_id, version=0, state=GateState.RED, computed_at=now
                )
        except IntegrityError:
            pass  # another refresh made it meanwhile: lock theirs
        row = KeptVerdict.objects.select_for_update().get(pk=release_id)
    return row


def refresh_one(release_id: int) -> KeptVerdict | None:
    """Evaluate the release's gate now and keep the answer; None if the release is gone.

    The row is locked before the gate is asked, so of two refreshes at once the one that writes
    last also evaluated last: a slower, older evaluation never overwrites a newer one. The
    version goes up only when the answer changed, so a poller's ETag holds while it does not.
    """
    releases = Release.objects.select_related("service", "environment", "current_stage")
    with transaction.atomic():
        if not releases.filter(pk=release_id).exists():
            return None  # deleted meanwhile
        row = _locked_row(release_id, timezone.now())
        release = releases.get(pk=release_id)
        now = timezone.now()  # after the lock: what we evaluate is at least as new as any wait
        verdict = gate.evaluate(release, now=now)
        payload = document(verdict)
        traffic = traffic_document(release)
        kinds = [b.kind for b in verdict.blockers]
        state = state_of(verdict.step, kinds)
        if (row.payload, row.traffic, row.state) != (payload, traffic, state):
            row.version += 1
        row.payload, row.traffic, row.state, row.top_kind = payload, traffic, state, top_kind(kinds)
        row.metric_blocked = bool(set(kinds) & METRIC_KINDS)
        row.computed_at = now
        row.next_change_at = next_change(verdict, now)
        row.save()
        # The documents as the database keeps them (PostgreSQL's jsonb orders an object's keys
        # its own way): the answer right after a recompute is byte for byte every later one.
        row.refresh_from_db(fields=["payload", "traffic"])
        stamps.changed(stamps.KEPT, [release_id])  # the API's copies of it (apps/api/reads.py)
        return row


def _ids(
    release_ids: set[int], service_ids: set[int] | None, measured_ids: set[int] = frozenset()
) -> list[int]:
    ids = set(release_ids)
    if measured_ids:
        ids.update(
            KeptVerdict.objects.filter(
                release_id__in=measured_ids, metric_blocked=True
            ).values_list("release_id", flat=True)
        )
    if service_ids is None or service_ids:
        unfinished = Release.objects.exclude(status__in=ReleaseStatus.finished())
        if service_ids:
            unfinished = unfinished.filter(service_id__in=service_ids)
        ids.update(unfinished.values_list("pk", flat=True))
    return sorted(ids)


def refresh(
    release_ids: Iterable[int],
    service_ids: set[int] | None = frozenset(),
    measured_ids: set[int] = frozenset(),
) -> None:
    """Recompute the verdicts of these releases, of the unfinished releases of these services
    (None: of every service) and of the measured ones a metric check holds, one at a time: one
    that fails stays due for the tick."""
    for release_id in _ids(set(release_ids), service_ids, measured_ids):
        try:
            refresh_one(release_id)
        except Exception:  # one release's bad gate must not keep the others' stale
            logger.exception(
                "Recomputing the gate of release %s failed; the tick retries", release_id
            )


def mark_due(
    release_ids: set[int], service_ids: set[int] | None, measured_ids: set[int] = frozenset()
) -> None:
    """Make these verdicts due now (inside the change's transaction: see gate_inputs)."""
    ids = _ids(release_ids, service_ids, measured_ids)
    KeptVerdict.objects.filter(release_id__in=ids).update(next_change_at=timezone.now())
    stamps.changed(stamps.KEPT, ids)


class _Keeper:
    """What apps.releases.gate_inputs calls (installed in RolloutsConfig.ready())."""

    mark_due = staticmethod(mark_due)
    refresh = staticmethod(refresh)


def install() -> None:
    gate_inputs.install(_Keeper())
    post_delete.connect(_deleted, sender=KeptVerdict, dispatch_uid="kept-verdict-stamp-delete")


def _deleted(sender: Any, instance: KeptVerdict, **kwargs: Any) -> None:
    """A release deleted takes its kept row along: the API's copies of it go too."""
    stamps.changed(stamps.KEPT, [instance.release_id])


def refresh_due(now: datetime | None = None) -> int:
    """The tick's part: recompute every verdict whose next change has come; returns how many."""
    now = now or timezone.now()
    due = list(
        KeptVerdict.objects.filter(next_change_at__lte=now)
        .order_by("next_change_at")
        .values_list("release_id", flat=True)
    )
    with job("rollouts.verdicts") as run:
        for release_id in due:
            with run.item(kind="release", pk=release_id, atomic=False):
                refresh_one(release_id)
    return len(due)


# --- reading ---------------------------------------------------------------------------------


def read(release_id: int, now: datetime | None = None) -> KeptVerdict | None:
    """The release's kept verdict, recomputed first when missing or due (one query otherwise)."""
    now = now or timezone.now()
    row = KeptVerdict.objects.filter(pk=release_id).first()
    if row is None or row.is_due(now):
        row = refresh_one(release_id)
    return row


def read_many(release_ids: Iterable[int], now: datetime | None = None) -> dict[int, KeptVerdict]:
    """Kept verdicts of many releases in one query; the few missing or due are recomputed."""
    now = now or timezone.now()
    ids = list(release_ids)
    rows = {row.release_id: row for row in KeptVerdict.objects.filter(pk__in=ids)}
    for release_id in ids:
        row = rows.get(release_id)
        if row is None or row.is_due(now):
            fresh = refresh_one(release_id)
            if fresh is not None:
                rows[release_id] = fresh
    return rows


# --- long poll -------------------------------------------------------------------------------


@dataclass
class _Waiters:
    """How many requests of this process may wait at once (GATE_LONG_POLL_WAITERS)."""

    limit: int
    semaphore: threading.BoundedSemaphore


_waiters: _Waiters | None = None
_waiters_lock = threading.Lock()


@contextmanager
def waiting_slot() -> Any:
    """Yield True if this request may wait (a slot was free), else False: answer at once."""
    global _waiters
    limit = settings.GATE_LONG_POLL_WAITERS
    with _waiters_lock:
        if _waiters is None or _waiters.limit != limit:
            _waiters = _Waiters(limit, threading.BoundedSemaphore(max(limit, 1)))
        waiters = _waiters
    got = limit > 0 and waiters.semaphore.acquire(blocking=False)
    try:
        yield got
    finally:
        if got:
            waiters.semaphore.release()


def wait_for_change(release_id: int, seen_version: int, seconds: float) -> KeptVerdict | None:
    """The kept verdict as soon as its version differs from `seen_version`, or after `seconds`.

    Polls the row's version (one indexed read) every GATE_LONG_POLL_INTERVAL seconds; a row
    that falls due meanwhile is recomputed, so a soak ending wakes the waiter too.
    """
    deadline = time.monotonic() + seconds
    interval = settings.GATE_LONG_POLL_INTERVAL
    while True:
        row = read(release_id)
        if row is None or row.version != seen_version:
            return row
        left = deadline - time.monotonic()
        if left <= 0:
            return row
        time.sleep(min(interval, left))

"""Evaluating releases and recording the results: what the tick and people call.

`evaluate_releases` claims one CheckRun per release for the tick's minute (so two ticks at once
evaluate each release once), reads the measurements (pushed samples in a few grouped queries
whatever the number of releases; Prometheus and SQL sources per release, in a small thread pool,
each failure recorded as an error result of its own criterion), applies the evaluator, and stores
the results. Acting on them (pause, roll back) is the caller's job:
apps/rollouts/breach_response.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.jobs.runner import Run
from apps.releases import gate_inputs
from apps.releases.models import Release

from . import claims, measuring, selection, streaks
from .choices import RunTrigger, Verdict
from .evaluator import Evaluation
from .models import CheckResult, CheckRun, MetricCriterion, MetricSource


@dataclass
class Outcome:
    """One release's run and its results, each with its criterion attached."""

    release: Release
    run: CheckRun
    results: list[CheckResult] = field(default_factory=list)


def evaluate_releases(
    releases: Sequence[Release],
    *,
    now: datetime | None = None,
    trigger: str = RunTrigger.TICK,
    run: Run | None = None,
) -> list[Outcome]:
    """Claim, measure, decide and record: one run per release, one result per criterion.

    With a job `run` (the tick), a release whose criteria cannot be evaluated is recorded as the
    job's failed item, its run notes why, and the other releases' results are stored as usual.
    """
    job_run = run
    now = now or timezone.now()
    runs = claims.claim_runs(releases, now, trigger)
    releases = [r for r in releases if r.pk in runs]
    if not releases:
        return []
    by_release = selection.criteria_by_release(releases)
    metric_ids = {c.metric_id for criteria in by_release.values() for c in criteria}
    service_ids = {r.service_id for r in releases}
    sources = selection.sources_by_key(service_ids, metric_ids) if metric_ids else {}
    pushed: list[tuple[Release, MetricCriterion]] = []
    remote: list[tuple[Release, MetricCriterion, MetricSource]] = []
    for release in releases:
        for criterion in by_release[release.pk]:
            source = selection.source_for(sources, release.service_id, criterion.metric_id)
            if source is None:
                pushed.append((release, criterion))
            else:
                remote.append((release, criterion, source))
    failed: set[int] = set()
    evaluations = measuring.evaluate_pushed(pushed, now, job_run, failed)
    evaluations.update(measuring.evaluate_remote(remote, now))
    previous = streaks.previous_results(runs, now)

    outcomes = []
    results = []
    for release in releases:
        if release.pk in failed:
            continue
        outcome = None
        with measuring.release_guard(job_run, release):
            outcome = _outcome(
                release, runs[release.pk], by_release[release.pk], evaluations, previous, now
            )
        if outcome is None:
            failed.add(release.pk)
            continue
        results.extend(outcome.results)
        outcomes.append(outcome)
    finished = timezone.now()
    if failed:
        # The claimed runs stay (the slot is taken, a second tick does not retry in a loop)
        # and say why they have no results.
        CheckRun.objects.filter(pk__in=[runs[pk].pk for pk in failed]).update(
            finished_at=finished, action="not evaluated: the job recorded the error"
        )
    by_verdict: dict[str, list[int]] = {}
    for outcome in outcomes:
        outcome.run.finished_at = finished
        by_verdict.setdefault(outcome.run.verdict, []).append(outcome.run.pk)
    with transaction.atomic():
        # No batch size: one statement on PostgreSQL whatever the number of releases
        # (SQLite splits by its limit on bound variables).
        CheckResult.objects.bulk_create(results)
        # One UPDATE per verdict, not bulk_update's CASE over every run: that CASE is
        # evaluated for each row, which made this write grow with the square of the releases.
        for verdict, ids in by_verdict.items():
            CheckRun.objects.filter(pk__in=ids).update(verdict=verdict, finished_at=finished)
        moved, same = _standings_moved(outcomes, previous)
        gate_inputs.changed(releases=moved, measured=same)
    return outcomes


def _standings_moved(
    outcomes: list[Outcome], previous: dict[tuple[int, int], CheckResult]
) -> tuple[set[int], set[int]]:
    """The releases whose gate the new results may change (a result, or the one before it,
    other than a pass), and those where a pass only followed a pass."""
    moved, same = set(), set()
    for outcome in outcomes:
        release_id = outcome.release.pk
        for result in outcome.results:
            before = previous.get((release_id, result.criterion_id))
            if result.verdict != Verdict.PASS or before is None or before.verdict != Verdict.PASS:
                moved.add(release_id)
                break
        else:
            same.add(release_id)
    return moved, same


def _outcome(
    release: Release,
    run: CheckRun,
    criteria: list[MetricCriterion],
    evaluations: dict[tuple[int, int], Evaluation],
    previous: dict[tuple[int, int], CheckResult],
    now: datetime,
) -> Outcome:
    """One release's results with their verdicts, and its run's overall verdict."""
    outcome = Outcome(release=release, run=run)
    for criterion in criteria:
        key = (release.pk, criterion.pk)
        outcome.results.append(
            streaks.build_result(run, criterion, evaluations[key], previous.get(key), now)
        )
    live = [r.verdict for r in outcome.results if not r.dry_run] or [Verdict.PASS]
    run.verdict = max(live, key=Verdict.severity) if outcome.results else ""
    return outcome


def run_now(release: Release, *, now: datetime | None = None) -> Outcome:
    """Evaluate one release by hand (admin action): a run of its own, outside the tick's slots."""
    return evaluate_releases([release], now=now, trigger=RunTrigger.MANUAL)[0]


def record_action(run: CheckRun, action: str) -> None:
    """Note on the run what the tick did because of it."""
    run.action = action[:200]
    CheckRun.objects.filter(pk=run.pk).update(action=run.action)

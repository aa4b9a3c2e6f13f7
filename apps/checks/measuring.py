"""Measuring criteria: pushed samples for many releases in a few grouped queries, Prometheus
and SQL sources per release in a small thread pool, each turned into an evaluator Evaluation.

A failing source is an ERROR evaluation of its own criterion, never the end of the others.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta

from django.db import close_old_connections

from apps.jobs.runner import Run
from apps.releases.models import Release

from . import evaluator
from .choices import Level, Reference, SignificanceTest, Variant
from .evaluator import Evaluation, Point, Stats
from .models import MetricCriterion, MetricSource
from .providers import ProviderError, Window, baseline_lookback, push
from .providers import fetch as provider_fetch

logger = logging.getLogger(__name__)

REMOTE_WORKERS = 8


def release_guard(run: Run | None, release: Release) -> AbstractContextManager[None]:
    """One release's share of a batched evaluation: in the tick, a release that fails is
    recorded and left out while the others go on; a person's own run (no `run`) sees the error.

    No savepoint: these steps only compute, the batch writes once at the end.
    """
    return run.item(release, atomic=False) if run is not None else nullcontext()


def _buckets_from_minutes(
    minutes: dict[int, Stats], criterion: MetricCriterion, widest: timedelta
) -> list[Stats]:
    """Fold per-minute sums (from `now - widest`) into the criterion's intervals (oldest first)."""
    interval = int(criterion.interval.total_seconds())
    count = max(1, int(criterion.window.total_seconds()) // interval)
    offset = int((widest - criterion.window).total_seconds())
    buckets = [Stats()] * count
    for minute, stats in minutes.items():
        second = minute * 60 - offset
        if second < 0:
            continue
        index = second // interval
        if index < count:
            buckets[index] = buckets[index] + stats
    return buckets


def _sum_minutes(minutes: dict[int, Stats], criterion: MetricCriterion, widest: timedelta) -> Stats:
    return sum(_buckets_from_minutes(minutes, criterion, widest), Stats())


def evaluate_pushed(
    pairs: list[tuple[Release, MetricCriterion]],
    now: datetime,
    run: Run | None = None,
    failed: set[int] | None = None,
) -> dict[tuple[int, int], Evaluation]:
    """Evaluate every pushed-sample criterion of every release in a fixed number of queries.

    A release whose evaluation raises is added to `failed` (and recorded by `run`).
    """
    failed = set() if failed is None else failed
    if not pairs:
        return {}
    widest = max(c.window for _, c in pairs)
    release_ids = {r.pk for r, _ in pairs}
    metric_ids = {c.metric_id for _, c in pairs}
    minutes = push.minute_stats(release_ids, metric_ids, now - widest, now)
    baseline_metrics = {c.metric_id for _, c in pairs if c.reference == Reference.BASELINE}
    baseline_start = now - baseline_lookback()
    baselines = (
        push.window_stats(release_ids, baseline_metrics, Variant.BASELINE, baseline_start, now)
        if baseline_metrics
        else {}
    )
    sequential = {(r.pk, c.metric_id) for r, c in pairs if c.rule().sequential}
    staged = (
        push.stage_stats({k[0] for k in sequential}, {k[1] for k in sequential}, now)
        if sequential
        else {}
    )
    ranked = {
        (r.pk, c.metric_id)
        for r, c in pairs
        if c.significance_test == SignificanceTest.MANN_WHITNEY and not c.rule().sequential
    }
    raw = push.raw_values(ranked, now - widest, now, baseline_start) if ranked else {}
    evaluations = {}
    for release, criterion in pairs:
        if release.pk in failed:
            continue
        evaluation = None
        with release_guard(run, release):
            evaluation = _evaluate_pushed_pair(
                release, criterion, now, widest, minutes, baselines, raw, staged
            )
        if evaluation is None:
            failed.add(release.pk)
            continue
        evaluations[(release.pk, criterion.pk)] = evaluation
    return evaluations


def _stage_entered(release: Release) -> datetime | None:
    """When the release entered the stage being watched (its windows reach no further back)."""
    stage = release.current_stage
    return stage.entered_at if stage is not None else None


def _evaluate_pushed_pair(
    release: Release,
    criterion: MetricCriterion,
    now: datetime,
    widest: timedelta,
    minutes: dict,
    baselines: dict,
    raw: dict,
    staged: dict,
) -> Evaluation:
    """One release's pushed-sample criterion, from the batch's grouped reads."""
    rule = criterion.rule()
    key = (release.pk, criterion.metric_id)
    treatment = minutes.get((*key, Variant.TREATMENT), {})
    if rule.sequential:
        # Everything since the stage began, not a window: the always-valid test accumulates.
        if criterion.reference == Reference.CONTROL:
            reference = staged.get((*key, Variant.CONTROL), Stats())
        else:
            reference = baselines.get(key, Stats())
        return evaluator.evaluate_relative(
            staged.get((*key, Variant.TREATMENT), Stats()), reference, rule
        )
    if criterion.reference == Reference.ABSOLUTE:
        evaluation = evaluator.evaluate_absolute(
            _buckets_from_minutes(treatment, criterion, widest),
            rule,
            lived=evaluator.intervals_lived(_stage_entered(release), now, rule),
        )
    else:
        if criterion.reference == Reference.CONTROL:
            reference = _sum_minutes(minutes.get((*key, Variant.CONTROL), {}), criterion, widest)
        else:
            reference = baselines.get(key, Stats())
        start = now - criterion.window
        values = {
            variant: [v for at, v in raw.get((*key, variant), []) if at >= start]
            for variant in (Variant.TREATMENT, Variant.CONTROL)
        }
        values[Variant.BASELINE] = [v for _, v in raw.get((*key, Variant.BASELINE), [])]
        evaluation = evaluator.evaluate_relative(
            _sum_minutes(treatment, criterion, widest),
            reference,
            rule,
            treatment_values=values[Variant.TREATMENT],
            reference_values=values[criterion.reference],
        )
    return evaluation


def evaluate_measurements(
    criterion: MetricCriterion,
    measurements: dict[str, list[Point]],
    now: datetime,
    since: datetime | None = None,
) -> Evaluation:
    """Evaluate one criterion on points a provider returned (`since`: the stage's entry)."""
    rule = criterion.rule()
    treatment = measurements.get(Variant.TREATMENT, [])
    if criterion.reference == Reference.ABSOLUTE:
        buckets = evaluator.bucket_points(
            treatment, end=now, window=rule.window, interval=rule.interval
        )
        return evaluator.evaluate_absolute(
            buckets, rule, lived=evaluator.intervals_lived(since, now, rule)
        )
    start = now - rule.window
    if rule.sequential:
        start = since or start  # the provider was asked for everything since the stage began
    in_window = [p for p in treatment if start <= p.at < now]
    reference_points = measurements.get(criterion.reference, [])
    if criterion.reference == Reference.CONTROL:
        reference_points = [p for p in reference_points if start <= p.at < now]
    return evaluator.evaluate_relative(
        Stats.of(in_window),
        Stats.of(reference_points),
        rule,
        treatment_values=[p.value for p in in_window],
        reference_values=[p.value for p in reference_points],
    )


def evaluate_one(
    criterion: MetricCriterion,
    release: Release,
    now: datetime,
    source: MetricSource | None = None,
) -> Evaluation:
    """Fetch and evaluate one criterion for one release; a failing source gives an ERROR level."""
    start = now - criterion.window
    entered = _stage_entered(release)
    if criterion.rule().sequential and entered is not None:
        start = min(start, entered)
    window = Window(start=start, end=now, step=criterion.interval)
    try:
        measurements = provider_fetch(criterion, release, window, source)
        # Inside the try: the points come from outside and run in a worker thread, where an
        # exception would end the whole pool's map, not just this criterion.
        return evaluate_measurements(criterion, measurements, now, _stage_entered(release))
    except ProviderError as exc:
        return Evaluation(Level.ERROR, detail=str(exc))
    except Exception as exc:  # a provider bug must not stop the other criteria
        logger.exception("Provider failed for criterion %s, release %s", criterion.pk, release.pk)
        return Evaluation(Level.ERROR, detail=f"The source failed: {type(exc).__name__}: {exc}")


def evaluate_remote(
    pairs: list[tuple[Release, MetricCriterion, MetricSource]], now: datetime
) -> dict[tuple[int, int], Evaluation]:
    """Prometheus and SQL criteria, a few at once: a slow source holds a thread, not the tick."""
    if not pairs:
        return {}

    def run(item: tuple[Release, MetricCriterion, MetricSource]) -> Evaluation:
        release, criterion, source = item
        try:
            return evaluate_one(criterion, release, now, source)
        finally:
            close_old_connections()

    if len(pairs) == 1:
        release, criterion, source = pairs[0]
        return {(release.pk, criterion.pk): evaluate_one(criterion, release, now, source)}
    with ThreadPoolExecutor(max_workers=min(REMOTE_WORKERS, len(pairs))) as pool:
        evaluations = list(pool.map(run, pairs))
    return {(r.pk, c.pk): e for (r, c, _), e in zip(pairs, evaluations, strict=True)}

"""Evaluating criteria for releases and recording the results: what the tick and people call.

`evaluate_releases` claims one CheckRun per release for the tick's minute (so two ticks at once
evaluate each release once), reads the measurements (pushed samples in a few grouped queries
whatever the number of releases; Prometheus and SQL sources per release, in a small thread pool,
each failure recorded as an error result of its own criterion), applies the evaluator, and stores
the results. Acting on them (pause, roll back) is the caller's job: apps/rollouts/analysis.py.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Max, Q
from django.utils import timezone

from apps.jobs.runner import Run
from apps.releases.models import Release, Stage

from . import evaluator
from .choices import Level, Reference, RunTrigger, SignificanceTest, SourceKind, Variant, Verdict
from .evaluator import Evaluation, Point, Stats, Streaks
from .models import (
    CheckNotification,
    CheckResult,
    CheckRun,
    MetricCriterion,
    MetricDefinition,
    MetricSource,
)
from .providers import ProviderError, Window, baseline_lookback, push
from .providers import fetch as provider_fetch

logger = logging.getLogger(__name__)

REMOTE_WORKERS = 8


def _guard(run: Run | None, release: Release) -> AbstractContextManager[None]:
    """One release's share of a batched evaluation: in the tick, a release that fails is
    recorded and left out while the others go on; a person's own run (no `run`) sees the error.

    No savepoint: these steps only compute, the batch writes once at the end.
    """
    return run.item(release, atomic=False) if run is not None else nullcontext()


def tick_seconds() -> int:
    return settings.CHECKS_TICK_SECONDS


def streak_gap() -> timedelta:
    """A previous result older than this does not continue a streak (the tick was stopped)."""
    return timedelta(seconds=settings.CHECKS_STREAK_GAP_SECONDS)


@dataclass
class Outcome:
    """One release's run and its results, each with its criterion attached."""

    release: Release
    run: CheckRun
    results: list[CheckResult] = field(default_factory=list)


# --- which criteria, which sources -------------------------------------------------------------


def criteria_for_plans(plan_ids: Iterable[int]) -> list[MetricCriterion]:
    """Enabled criteria of the given plans, on the plan or on one of its stages: one query."""
    plan_ids = list(plan_ids)
    return list(
        MetricCriterion.objects.filter(
            Q(plan_id__in=plan_ids) | Q(stage_template__plan_id__in=plan_ids), enabled=True
        )
        .select_related("metric", "stage_template")
        .order_by("id")
    )


def criteria_by_release(releases: Sequence[Release]) -> dict[int, list[MetricCriterion]]:
    """The criteria watching each release's current stage."""
    criteria = criteria_for_plans({r.plan_id for r in releases})
    by_plan: dict[int, list[MetricCriterion]] = defaultdict(list)
    for criterion in criteria:
        plan_id = criterion.plan_id or criterion.stage_template.plan_id
        by_plan[plan_id].append(criterion)
    return {
        r.pk: [c for c in by_plan.get(r.plan_id, []) if c.applies_to(r.current_stage)]
        for r in releases
    }


def stage_criteria(release: Release, stage: Stage | None) -> list[MetricCriterion]:
    """The enabled criteria watching one stage of a release."""
    if stage is None:
        return []
    return [c for c in criteria_for_plans([release.plan_id]) if c.applies_to(stage)]


def sources_by_key(
    service_ids: Iterable[int], metric_ids: Iterable[int]
) -> dict[tuple[int | None, int], MetricSource]:
    """Configured sources keyed (service id or None, metric id): one query."""
    rows = MetricSource.objects.filter(
        Q(service_id__in=list(service_ids)) | Q(service__isnull=True),
        metric_id__in=list(metric_ids),
    )
    return {(s.service_id, s.metric_id): s for s in rows}


def source_for(
    sources: dict[tuple[int | None, int], MetricSource], service_id: int, metric_id: int
) -> MetricSource | None:
    """The service's own source of the metric, else the shared one; None means pushed."""
    source = sources.get((service_id, metric_id)) or sources.get((None, metric_id))
    if source is not None and source.kind == SourceKind.PUSH:
        return None
    return source


# --- claiming the runs -------------------------------------------------------------------------


def slot_of(now: datetime) -> datetime:
    period = tick_seconds()
    epoch = int(now.timestamp()) // period * period
    return datetime.fromtimestamp(epoch, tz=now.tzinfo or timezone.get_current_timezone())


def claim_runs(
    releases: Sequence[Release], now: datetime, trigger: str = RunTrigger.TICK
) -> dict[int, CheckRun]:
    """Create this tick's run for each release unless another tick has claimed it already.

    The unique (release, slot) constraint makes the claim: rows another worker inserted first are
    skipped by the insert, and we read back only the rows carrying our own claim id.
    """
    if not releases:
        return {}
    claim = uuid.uuid4()
    slot = slot_of(now) if trigger == RunTrigger.TICK else None
    runs = [
        CheckRun(
            release=r,
            stage_id=r.current_stage_id,
            trigger=trigger,
            slot=slot,
            claim=claim,
            started_at=now,
        )
        for r in releases
    ]
    if slot is None:
        CheckRun.objects.bulk_create(runs)
        return {run.release_id: run for run in runs}
    CheckRun.objects.bulk_create(runs, ignore_conflicts=True)
    return {run.release_id: run for run in CheckRun.objects.filter(slot=slot, claim=claim)}


# --- measuring ---------------------------------------------------------------------------------


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


def _evaluate_push(
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
    ranked = {
        (r.pk, c.metric_id)
        for r, c in pairs
        if c.significance_test == SignificanceTest.MANN_WHITNEY
    }
    raw = push.raw_values(ranked, now - widest, now, baseline_start) if ranked else {}
    evaluations = {}
    for release, criterion in pairs:
        if release.pk in failed:
            continue
        evaluation = None
        with _guard(run, release):
            evaluation = _evaluate_pushed_pair(
                release, criterion, now, widest, minutes, baselines, raw, baseline_start
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
    baseline_start: datetime,
) -> Evaluation:
    """One release's pushed-sample criterion, from the batch's grouped reads."""
    rule = criterion.rule()
    key = (release.pk, criterion.metric_id)
    treatment = minutes.get((*key, Variant.TREATMENT), {})
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
    window = Window(start=now - criterion.window, end=now, step=criterion.interval)
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


def _evaluate_remote(
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


# --- history -----------------------------------------------------------------------------------


def previous_results(
    release_ids: Iterable[int], now: datetime
) -> dict[tuple[int, int], CheckResult]:
    """Each (release, criterion)'s latest result of the last hour: one query."""
    release_ids = list(release_ids)
    recent = CheckResult.objects.filter(
        release_id__in=release_ids, at__gte=now - max(streak_gap(), timedelta(hours=1)), at__lte=now
    )
    latest = recent.values("release_id", "criterion_id").annotate(last=Max("id")).values("last")
    rows = CheckResult.objects.filter(id__in=latest).only(
        "id",
        "release_id",
        "criterion_id",
        "at",
        "verdict",
        "critical_streak",
        "breach_streak",
        "nodata_streak",
        "episode",
    )
    return {(r.release_id, r.criterion_id): r for r in rows}


def _streaks_of(previous: CheckResult | None, now: datetime) -> Streaks | None:
    if previous is None or now - previous.at > streak_gap():
        return None
    return Streaks(previous.critical_streak, previous.breach_streak, previous.nodata_streak)


def _episode(previous: CheckResult | None, now: datetime) -> int:
    """A breach episode is named by the last result before it, so every tick names it alike."""
    if previous is None:
        # No history in the last hour: ticks overlapping now name the episode by the hour.
        return -(int(now.timestamp()) // 3600)
    if previous.verdict in (Verdict.WARN, Verdict.FAIL) and now - previous.at <= streak_gap():
        return previous.episode
    return previous.pk


def build_result(
    run: CheckRun,
    criterion: MetricCriterion,
    evaluation: Evaluation,
    previous: CheckResult | None,
    now: datetime,
) -> CheckResult:
    """A CheckResult for one evaluation, with the verdict its history gives."""
    decision = evaluator.decide(evaluation.level, _streaks_of(previous, now), criterion.rule())
    detail = " ".join(part for part in (evaluation.detail, decision.note) if part)
    result = CheckResult(
        run=run,
        release_id=run.release_id,
        criterion=criterion,
        label=criterion.label[:200],
        at=now,
        level=evaluation.level,
        verdict=decision.verdict,
        value=evaluation.value,
        reference_value=evaluation.reference_value,
        delta=evaluation.delta,
        p_value=evaluation.p_value,
        samples=evaluation.samples,
        threshold=evaluation.threshold,
        detail=detail,
        dry_run=criterion.dry_run,
        critical_streak=decision.streaks.critical,
        breach_streak=decision.streaks.breach,
        nodata_streak=decision.streaks.nodata,
    )
    result.episode = (
        _episode(previous, now) if decision.verdict in (Verdict.WARN, Verdict.FAIL) else 0
    )
    return result


# --- the whole evaluation ----------------------------------------------------------------------


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
    runs = claim_runs(releases, now, trigger)
    releases = [r for r in releases if r.pk in runs]
    if not releases:
        return []
    by_release = criteria_by_release(releases)
    metric_ids = {c.metric_id for criteria in by_release.values() for c in criteria}
    sources = sources_by_key({r.service_id for r in releases}, metric_ids) if metric_ids else {}
    pushed: list[tuple[Release, MetricCriterion]] = []
    remote: list[tuple[Release, MetricCriterion, MetricSource]] = []
    for release in releases:
        for criterion in by_release[release.pk]:
            source = source_for(sources, release.service_id, criterion.metric_id)
            if source is None:
                pushed.append((release, criterion))
            else:
                remote.append((release, criterion, source))
    failed: set[int] = set()
    evaluations = _evaluate_push(pushed, now, job_run, failed)
    evaluations.update(_evaluate_remote(remote, now))
    previous = previous_results(runs, now)

    outcomes = []
    results = []
    for release in releases:
        if release.pk in failed:
            continue
        outcome = None
        with _guard(job_run, release):
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
    return outcomes


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
            build_result(run, criterion, evaluations[key], previous.get(key), now)
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


def claim_notification(result: CheckResult) -> CheckNotification | None:
    """Claim the one notification of this breach episode; None when another tick has it."""
    try:
        with transaction.atomic():
            return CheckNotification.objects.create(
                release_id=result.release_id,
                criterion_id=result.criterion_id,
                episode=result.episode,
                verdict=result.verdict,
                result=result,
            )
    except IntegrityError:
        return None


# --- the gate's questions ----------------------------------------------------------------------


@dataclass
class CriterionStanding:
    """How one criterion fared over a stage's soak: for the gate and the API."""

    criterion: MetricCriterion
    bad: int  # warn or fail results in the window
    passes: int
    latest: CheckResult | None

    @property
    def ok(self) -> bool:
        return self.bad == 0 and self.passes > 0


def soak_window_start(stage: Stage, now: datetime) -> datetime:
    """Results since the stage began, but no older than its soak time (old alarms age out)."""
    entered = stage.entered_at or now
    if stage.min_soak > timedelta(0):
        return max(entered, now - stage.min_soak)
    return entered


def standings(
    release: Release, stage: Stage, criteria: Sequence[MetricCriterion], now: datetime
) -> list[CriterionStanding]:
    """Per criterion: warn/fail and pass counts over the soak, and the latest result (2 queries)."""
    from django.db.models import Count

    if not criteria:
        return []
    start = soak_window_start(stage, now)
    rows = (
        CheckResult.objects.filter(
            release_id=release.pk, criterion__in=[c.pk for c in criteria], at__gte=start
        )
        .values("criterion_id")
        .annotate(
            bad=Count("id", filter=Q(verdict__in=[Verdict.WARN, Verdict.FAIL])),
            passes=Count("id", filter=Q(verdict=Verdict.PASS)),
            last=Max("id"),
        )
        .order_by()
    )
    counts = {row["criterion_id"]: row for row in rows}
    latest = {
        r.criterion_id: r
        for r in CheckResult.objects.filter(pk__in=[row["last"] for row in counts.values()])
    }
    if stage.min_soak <= timedelta(0):
        # No soak time: only the latest evaluation counts.
        return [
            CriterionStanding(
                criterion=c,
                bad=int(latest[c.pk].verdict in (Verdict.WARN, Verdict.FAIL))
                if c.pk in latest
                else 0,
                passes=int(latest[c.pk].verdict == Verdict.PASS) if c.pk in latest else 0,
                latest=latest.get(c.pk),
            )
            for c in criteria
        ]
    return [
        CriterionStanding(
            criterion=c,
            bad=counts.get(c.pk, {}).get("bad", 0),
            passes=counts.get(c.pk, {}).get("passes", 0),
            latest=latest.get(c.pk),
        )
        for c in criteria
    ]


def latest_results(release: Release) -> list[CheckResult]:
    """The latest result of each criterion evaluated for the release (newest first)."""
    latest = (
        CheckResult.objects.filter(release_id=release.pk, criterion__isnull=False)
        .values("criterion_id")
        .annotate(last=Max("id"))
        .values("last")
    )
    return list(
        CheckResult.objects.filter(pk__in=latest)
        .select_related("criterion__metric", "run")
        .order_by("criterion_id")
    )


def traffic_metric() -> MetricDefinition | None:
    """The metric whose counts are requests served (the first one marked so)."""
    return MetricDefinition.objects.filter(counts_traffic=True).order_by("key").first()


def traffic_served(release: Release, stage: Stage, now: datetime) -> float | None:
    """Requests the release served since the stage began, read from the traffic metric's source.

    The service's source of the traffic metric answers through its provider (pushed samples,
    a Prometheus query with its {soak} placeholder set to the stage's age, or an SQL query given
    the stage's start and now); pushed samples when the service has none. None when no traffic
    metric is defined; ProviderError when its source cannot answer (the gate says which).
    """
    from .providers import served

    metric = traffic_metric()
    if metric is None or stage.entered_at is None:
        return None
    source = source_for(
        sources_by_key([release.service_id], [metric.pk]), release.service_id, metric.pk
    )
    try:
        return served(release, metric, stage.entered_at, now, source)
    except ProviderError as exc:
        logger.warning("Traffic of release %s unknown: %s", release.pk, exc)
        raise

"""Backtest: replay a criterion, saved or not, over the stored samples of past releases.

For each release the criterion is evaluated once a minute (as the tick does) over the time it
would have watched it (the whole run for a plan criterion, the stage's time for a stage one),
with the same evaluator and history rules; the replay reports when it would first have warned,
and when it would have paused, rolled back or notified (a pause or rollback ends the replay).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from apps.releases.models import Release

from . import evaluator
from .choices import CriticalAction, Variant, Verdict, WarningAction
from .evaluator import Point, Streaks
from .measuring import evaluate_measurements
from .models import MetricCriterion, Sample
from .providers import baseline_lookback, variants_for

STEP = timedelta(minutes=1)
MAX_STEPS = 60 * 24 * 14  # two weeks of minutes per release, at most


@dataclass
class Moment:
    """A point of the replay where something would have happened."""

    at: datetime
    what: str  # "warn", "notify", "pause", "rollback"
    verdict: str
    value: float | None
    detail: str = ""


@dataclass
class Replay:
    """One release replayed: how many evaluations, and what would have happened when."""

    release: Release
    start: datetime | None
    end: datetime | None
    evaluations: int = 0
    moments: list[Moment] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def outcome(self) -> str:
        final = [m for m in self.moments if m.what in ("pause", "rollback")]
        if final:
            return f"would {'roll back' if final[0].what == 'rollback' else 'pause'}"
        if self.moments:
            return "would warn"
        if not self.evaluations:
            return "nothing to replay"
        return "no breach"


def releases_for(
    criterion: MetricCriterion, *, limit: int = 10, service_id: int | None = None
) -> list[Release]:
    """The last `limit` started releases under the criterion's plan (optionally of one service)."""
    plan_id = criterion.plan_id or criterion.stage_template.plan_id
    releases = Release.objects.filter(plan_id=plan_id, started_at__isnull=False)
    if service_id is not None:
        releases = releases.filter(service_id=service_id)
    return list(
        releases.select_related("service", "environment")
        .prefetch_related("stages")
        .order_by("-started_at", "-id")[:limit]
    )


def _watched_span(criterion: MetricCriterion, release: Release) -> tuple[datetime, datetime] | None:
    now = timezone.now()
    if criterion.stage_template_id is None:
        if release.started_at is None:
            return None
        return release.started_at, release.finished_at or now
    for stage in release.stages.all():
        if stage.template_id == criterion.stage_template_id and stage.entered_at:
            return stage.entered_at, stage.exited_at or now
    return None


def replay(criterion: MetricCriterion, release: Release) -> Replay:
    """Evaluate the criterion minute by minute over the release's stored samples."""
    span = _watched_span(criterion, release)
    result = Replay(release=release, start=span[0] if span else None, end=span[1] if span else None)
    if span is None:
        return result
    start, end = span
    variants = variants_for(criterion)
    rows = Sample.objects.filter(
        release=release,
        metric_id=criterion.metric_id,
        variant__in=variants,
        at__gte=start - max(criterion.window, baseline_lookback()),
        at__lt=end,
    ).values_list("variant", "at", "value", "count")
    series: dict[str, list[Point]] = defaultdict(list)
    for variant, at, value, count in rows.order_by("at"):
        series[variant].append(Point(at, value, count))
    times = {variant: [p.at for p in points] for variant, points in series.items()}
    rule = criterion.rule()
    streaks: Streaks | None = None
    previous_verdict = Verdict.PASS
    now = start + STEP
    steps = 0
    while now <= end and steps < MAX_STEPS:
        steps += 1
        # A sequential criterion reads everything since the replayed stretch began, as the tick
        # reads everything since the stage began.
        window_start = start if rule.sequential else now - criterion.window
        measurements = {}
        for variant in variants:
            points, stamps = series.get(variant, []), times.get(variant, [])
            since = now - baseline_lookback() if variant == Variant.BASELINE else window_start
            low = bisect.bisect_left(stamps, since)
            measurements[variant] = points[low : bisect.bisect_left(stamps, now)]
        evaluation = evaluate_measurements(
            criterion, measurements, now, since=start if rule.sequential else None
        )
        decision = evaluator.decide(evaluation.level, streaks, rule)
        streaks = decision.streaks
        result.evaluations += 1
        result.verdicts[decision.verdict] += 1
        verdict = decision.verdict
        detail = " ".join(p for p in (evaluation.detail, decision.note) if p)
        if verdict == Verdict.FAIL and criterion.on_critical != CriticalAction.NOTIFY:
            result.moments.append(
                Moment(now, criterion.on_critical, verdict, evaluation.value, detail)
            )
            break  # a paused or rolled back release is watched no more
        if verdict in (Verdict.WARN, Verdict.FAIL) and previous_verdict not in (
            Verdict.WARN,
            Verdict.FAIL,
        ):
            notifies = verdict == Verdict.FAIL or criterion.on_warning == WarningAction.NOTIFY
            result.moments.append(
                Moment(now, "notify" if notifies else "warn", verdict, evaluation.value, detail)
            )
        previous_verdict = verdict
        now += STEP
    return result


def backtest(
    criterion: MetricCriterion, *, limit: int = 10, service_id: int | None = None
) -> list[Replay]:
    """Replay the criterion over the last `limit` releases of its plan."""
    return [
        replay(criterion, r) for r in releases_for(criterion, limit=limit, service_id=service_id)
    ]


def describe(criterion: MetricCriterion, replays: list[Replay]) -> list[str]:
    """Lines a person reads: one per release, then one per moment."""
    lines = []
    for item in replays:
        release = item.release
        head = (
            f"{release.service.slug} {release.version} → {release.environment.slug} "
            f"({release.get_status_display().lower()}): {item.outcome}"
        )
        if item.evaluations:
            counts = ", ".join(
                f"{n} {verdict}" for verdict, n in sorted(item.verdicts.items()) if n
            )
            head += f" — {item.evaluations} evaluations ({counts})"
        lines.append(head)
        for moment in item.moments:
            verb = {
                "rollback": "would roll back",
                "pause": "would pause",
                "notify": "would notify",
                "warn": "would warn",
            }[moment.what]
            lines.append(
                f"  {moment.at:%Y-%m-%d %H:%M} {verb} ({moment.verdict}, "
                f"{criterion.metric.format(moment.value)})"
                + (f": {moment.detail}" if moment.detail else "")
            )
    return lines

"""A result's verdict from its history: the streaks a previous result carries on, and the breach
episode it belongs to (so every tick names one breach alike and it is notified once)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max

from . import evaluator
from .choices import Verdict
from .evaluator import Evaluation, Streaks
from .models import CheckResult, CheckRun, MetricCriterion


def streak_gap() -> timedelta:
    """A previous result older than this does not continue a streak (the tick was stopped)."""
    return timedelta(seconds=settings.CHECKS_STREAK_GAP_SECONDS)


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
        more_needed=evaluation.more_needed,
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

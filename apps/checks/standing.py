"""Where each criterion stands for the gate and the pages: its results over a stage's soak, its
latest result, and the traffic the stage has served."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q

from apps.releases.models import Release, Stage

from .choices import Verdict
from .models import CheckResult, MetricCriterion, MetricDefinition
from .providers import ProviderError, served
from .selection import source_for, sources_by_key

logger = logging.getLogger(__name__)


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

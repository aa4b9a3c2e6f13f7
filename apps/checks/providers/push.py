"""Samples pushed through the API: per release with `fetch`, or in bulk for the tick."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Count, F, FloatField, Func, Max, Min, Q, Sum
from django.db.models.functions import Floor

from ..choices import Variant
from ..evaluator import Point, Stats
from . import Measurements, Window, baseline_lookback, variants_for

if TYPE_CHECKING:
    from apps.releases.models import Release

    from ..models import MetricCriterion, MetricDefinition, MetricSource


class EpochSeconds(Func):
    """Seconds since 1970 of a datetime column, on PostgreSQL and SQLite."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        return super().as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
            **extra,
        )


def fetch(
    criterion: MetricCriterion,
    release: Release,
    window: Window,
    source: MetricSource | None = None,
) -> Measurements:
    """The release's samples of the criterion's metric in the window (baseline: lookback)."""
    from ..models import Sample

    measurements: Measurements = {}
    for variant in variants_for(criterion):
        start = window.end - baseline_lookback() if variant == Variant.BASELINE else window.start
        rows = Sample.objects.filter(
            release=release,
            metric_id=criterion.metric_id,
            variant=variant,
            at__gte=start,
            at__lt=window.end,
        ).values_list("at", "value", "count")
        measurements[variant] = [Point(at, value, count) for at, value, count in rows]
    return measurements


def served(
    release: Release,
    metric: MetricDefinition,
    start: datetime,
    end: datetime,
    source: MetricSource | None = None,
) -> float:
    """The treatment's pushed samples of the traffic metric in [start, end): counts, else values."""
    from django.db.models.functions import Coalesce

    from ..models import Sample

    total = Sample.objects.filter(
        release_id=release.pk,
        metric_id=metric.pk,
        variant=Variant.TREATMENT,
        at__gte=start,
        at__lt=end,
    ).aggregate(
        served=Sum(Coalesce("count", "value", output_field=FloatField()), output_field=FloatField())
    )["served"]
    return total or 0.0


Key = tuple[int, int, str]  # release id, metric id, variant


def minute_stats(
    release_ids: Iterable[int], metric_ids: Iterable[int], start: datetime, end: datetime
) -> dict[Key, dict[int, Stats]]:
    """Per (release, metric, variant), the samples of each minute since `start`: one query."""
    from ..models import Sample

    start_epoch = start.timestamp()
    rows = (
        Sample.objects.filter(
            release_id__in=list(release_ids),
            metric_id__in=list(metric_ids),
            variant__in=[Variant.TREATMENT, Variant.CONTROL],
            at__gte=start,
            at__lt=end,
        )
        .annotate(minute=Floor((EpochSeconds("at") - start_epoch) / 60.0))
        .values("release_id", "metric_id", "variant", "minute")
        .annotate(
            n=Count("id"),
            total=Sum("value"),
            weighted=Sum(F("value") * F("count"), output_field=FloatField()),
            weight=Sum("count", output_field=FloatField()),
            squares=Sum(F("value") * F("value"), output_field=FloatField()),
            maximum=Max("value"),
            minimum=Min("value"),
        )
        .order_by()
    )
    stats: dict[Key, dict[int, Stats]] = defaultdict(dict)
    for row in rows:
        stats[(row["release_id"], row["metric_id"], row["variant"])][int(row["minute"])] = _stats(
            row
        )
    return stats


def window_stats(
    release_ids: Iterable[int],
    metric_ids: Iterable[int],
    variant: str,
    start: datetime,
    end: datetime,
) -> dict[tuple[int, int], Stats]:
    """Per (release, metric), the sums of one variant's samples in [start, end): one query."""
    from ..models import Sample

    rows = (
        Sample.objects.filter(
            release_id__in=list(release_ids),
            metric_id__in=list(metric_ids),
            variant=variant,
            at__gte=start,
            at__lt=end,
        )
        .values("release_id", "metric_id")
        .annotate(
            n=Count("id"),
            total=Sum("value"),
            weighted=Sum(F("value") * F("count"), output_field=FloatField()),
            weight=Sum("count", output_field=FloatField()),
            squares=Sum(F("value") * F("value"), output_field=FloatField()),
            maximum=Max("value"),
            minimum=Min("value"),
        )
        .order_by()
    )
    return {(row["release_id"], row["metric_id"]): _stats(row) for row in rows}


def stage_stats(
    release_ids: Iterable[int], metric_ids: Iterable[int], end: datetime
) -> dict[Key, Stats]:
    """Per (release, metric, variant), the treatment's and control's samples since the release
    entered its current stage: what the sequential test reads, in one query."""
    from ..models import Sample

    rows = (
        Sample.objects.filter(
            release_id__in=list(release_ids),
            metric_id__in=list(metric_ids),
            variant__in=[Variant.TREATMENT, Variant.CONTROL],
            at__gte=F("release__current_stage__entered_at"),
            at__lt=end,
        )
        .values("release_id", "metric_id", "variant")
        .annotate(
            n=Count("id"),
            total=Sum("value"),
            weighted=Sum(F("value") * F("count"), output_field=FloatField()),
            weight=Sum("count", output_field=FloatField()),
            squares=Sum(F("value") * F("value"), output_field=FloatField()),
            maximum=Max("value"),
            minimum=Min("value"),
        )
        .order_by()
    )
    return {(row["release_id"], row["metric_id"], row["variant"]): _stats(row) for row in rows}


def raw_values(
    wanted: Iterable[tuple[int, int]], start: datetime, end: datetime, baseline_start: datetime
) -> dict[Key, list[tuple[datetime, float]]]:
    """Every (time, value) of the given (release, metric) pairs, for rank tests: one query."""
    from ..models import Sample

    wanted = list(wanted)
    if not wanted:
        return {}
    pairs = Q()
    for release_id, metric_id in wanted:
        pairs |= Q(release_id=release_id, metric_id=metric_id)
    in_window = Q(variant__in=[Variant.TREATMENT, Variant.CONTROL], at__gte=start, at__lt=end)
    baseline = Q(variant=Variant.BASELINE, at__gte=baseline_start, at__lt=end)
    values: dict[Key, list[tuple[datetime, float]]] = defaultdict(list)
    rows = Sample.objects.filter(pairs).filter(in_window | baseline).order_by()
    for release_id, metric_id, variant, at, value in rows.values_list(
        "release_id", "metric_id", "variant", "at", "value"
    ):
        values[(release_id, metric_id, variant)].append((at, value))
    return values


def _stats(row: dict[str, Any]) -> Stats:
    return Stats(
        n=row["n"],
        total=row["total"] or 0.0,
        weighted=row["weighted"] or 0.0,
        weight=row["weight"] or 0.0,
        squares=row.get("squares") or 0.0,
        maximum=row["maximum"],
        minimum=row["minimum"],
    )

"""Metrics, criteria and samples for the metric-check tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from apps.checks.choices import BadDirection, MetricKind, Variant
from apps.checks.models import MetricCriterion, MetricDefinition, Sample
from apps.releases.models import Release, RolloutPlan

MINUTE = timedelta(minutes=1)


@pytest.fixture
def error_rate(db) -> MetricDefinition:
    return MetricDefinition.objects.create(
        key="error_rate",
        name="Error rate",
        unit="ratio",
        kind=MetricKind.RATIO,
        bad_direction=BadDirection.HIGHER,
        counts_traffic=True,
    )


@pytest.fixture
def latency(db) -> MetricDefinition:
    return MetricDefinition.objects.create(
        key="p95_latency_seconds", name="p95 latency", unit="s", kind=MetricKind.GAUGE
    )


def criterion(plan: RolloutPlan, metric: MetricDefinition, **fields: Any) -> MetricCriterion:
    """A criterion on every stage of `plan`; thresholds and actions as given."""
    defaults: dict[str, Any] = {"comparator": ">", "critical_threshold": 0.05}
    made = MetricCriterion(plan=plan, metric=metric, **{**defaults, **fields})
    made.full_clean()
    made.save()
    return made


def push(
    release: Release,
    metric: MetricDefinition,
    values: Sequence[float | None],
    *,
    end: datetime,
    count: int | None = 100,
    variant: str = Variant.TREATMENT,
    per_minute: int = 2,
) -> int:
    """Store one value per minute (oldest first) for the minutes before `end`; None skips one."""
    samples = []
    for index, value in enumerate(values):
        if value is None:
            continue
        minute = end - MINUTE * (len(values) - index)
        for k in range(per_minute):
            samples.append(
                Sample(
                    release=release,
                    metric=metric,
                    variant=variant,
                    at=minute + timedelta(seconds=5 + 25 * k),
                    value=value,
                    count=count,
                )
            )
    Sample.objects.bulk_create(samples)
    return len(samples)


@pytest.fixture
def pusher() -> Callable[..., int]:
    return push

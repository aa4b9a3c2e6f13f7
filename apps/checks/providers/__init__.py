"""Metric providers: one module per source kind, each with `fetch(criterion, release, window)`
and `served(release, start, end)` (requests served, for a stage's traffic soak).

`fetch` returns the measurements of every variant the criterion needs (treatment, and control or
baseline for relative criteria) as evaluator Points, or raises ProviderError with a sentence for
the check result. The tick reads pushed samples in bulk instead (see push.py), but the backtest
and one-off evaluations go through `fetch` like every other source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING

from django.conf import settings

from ..choices import Reference, SourceKind, Variant
from ..evaluator import Point

if TYPE_CHECKING:
    from apps.releases.models import Release

    from ..models import MetricCriterion, MetricDefinition, MetricSource

Measurements = dict[str, list[Point]]


class ProviderError(Exception):
    """A source could not answer: down, slow, refused, or malformed. The message is recorded."""


@dataclass(frozen=True)
class Window:
    """The time range an evaluation reads, and the interval its points are grouped by."""

    start: datetime
    end: datetime
    step: timedelta


def baseline_lookback() -> timedelta:
    return timedelta(hours=settings.CHECKS_BASELINE_LOOKBACK_HOURS)


def variants_for(criterion: MetricCriterion) -> list[str]:
    """The variants an evaluation of this criterion reads."""
    if criterion.reference == Reference.CONTROL:
        return [Variant.TREATMENT, Variant.CONTROL]
    if criterion.reference == Reference.BASELINE:
        return [Variant.TREATMENT, Variant.BASELINE]
    return [Variant.TREATMENT]


def module_for(kind: str) -> ModuleType:
    from . import prometheus, push, sql

    return {SourceKind.PUSH: push, SourceKind.PROMETHEUS: prometheus, SourceKind.SQL: sql}[kind]


def fetch(
    criterion: MetricCriterion,
    release: Release,
    window: Window,
    source: MetricSource | None = None,
) -> Measurements:
    """Read the criterion's measurements for the release from its source (push when none)."""
    kind = source.kind if source is not None else SourceKind.PUSH
    return module_for(kind).fetch(criterion, release, window, source=source)


def served(
    release: Release,
    metric: MetricDefinition,
    start: datetime,
    end: datetime,
    source: MetricSource | None = None,
) -> float:
    """Requests the release (treatment) served in [start, end), from the traffic metric's source.

    Push when the service has no source for the metric; each kind reads its own way. Raises
    ProviderError when the source cannot answer.
    """
    kind = source.kind if source is not None else SourceKind.PUSH
    return module_for(kind).served(release, metric, start, end, source=source)


def placeholders(release: Release, variant: str) -> dict[str, str]:
    """The values a query template may name. {environment} is where the release is now (its
    current stage's): a plan through staging is measured on staging's series there."""
    return {
        "service": release.service.slug,
        "environment": release.current_environment.slug,
        "release": str(release.pk),
        "version": release.version,
        "variant": variant,
    }


def reference_window(release: Release, window: Window, variant: str) -> Window:
    """Where a remote source reads a variant: the baseline is the time before the release."""
    if variant != Variant.BASELINE:
        return window
    length = max(window.end - window.start, timedelta(hours=1))
    end = release.started_at or window.end
    return Window(start=end - length, end=end, step=window.step)

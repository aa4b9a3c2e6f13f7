"""Taking in pushed samples: validate every item, then store all of them or none."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.releases.models import Release

from .choices import MetricKind, Variant
from .models import MetricDefinition, Sample

MAX_SAMPLES = 10_000
FIELDS = {"release", "metric", "value", "variant", "at", "count"}
FUTURE_LIMIT = timedelta(days=1)
VARIANTS = frozenset(Variant.values)


@dataclass
class SampleBatchError(Exception):
    """The batch was refused: a sentence, and per-item errors (index, field, message)."""

    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)


class Row(NamedTuple):
    """One validated sample, in checks_sample's column order."""

    release_id: int
    metric_id: int
    variant: str
    at: datetime
    value: float
    count: int | None
    received_at: datetime


@dataclass
class IngestOutcome:
    """How many samples were taken, and how many of them were already stored."""

    accepted: int
    duplicates: int


def _error(index: int, name: str, message: str) -> dict[str, Any]:
    return {"index": index, "field": name, "message": message}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any, low: int, high: int) -> int | None:
    """The value as an int when it is a whole number in [low, high); None otherwise.

    Compared before any float(): float() of a 400-digit integer raises OverflowError.
    """
    if not _number(value):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if low <= value < high else None


def _shown(value: Any) -> str:
    """A refused value as the error quotes it: its repr, cut (a refused value may be huge)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def ingest(
    items: Any, *, service_ids: frozenset[int] | None, now: datetime | None = None
) -> IngestOutcome:
    """Validate a batch and store it whole; an exact duplicate (release, metric, variant, at)
    is stored once. `service_ids` limits the releases a token may push for (None: no limit)."""
    now = now or timezone.now()
    if not isinstance(items, list):
        raise SampleBatchError("The body must be a JSON list of samples.")
    if not items:
        raise SampleBatchError("The list is empty: send at least one sample.")
    if len(items) > MAX_SAMPLES:
        raise SampleBatchError(
            f"{len(items):,} samples in one request; the limit is {MAX_SAMPLES:,}. Split the batch."
        )
    errors: list[dict[str, Any]] = []
    release_ids = {
        _whole(item.get("release"), 1, 2**63) for item in items if isinstance(item, dict)
    } - {None}
    # Only strings are looked up (a list or an object as a key is refused below, not hashed).
    keys = {
        item.get("metric")
        for item in items
        if isinstance(item, dict) and isinstance(item.get("metric"), str)
    }
    releases = Release.objects.select_related("service").in_bulk(list(release_ids))
    metrics = {
        m.key: m
        for m in MetricDefinition.objects.filter(key__in=[k for k in keys if isinstance(k, str)])
    }
    oldest = now - timedelta(days=settings.CHECKS_SAMPLE_RETENTION)
    samples: dict[tuple[int, int, str, datetime], Row] = {}
    for index, item in enumerate(items):
        before = len(errors)
        if not isinstance(item, dict):
            errors.append(_error(index, "", "Each sample must be a JSON object."))
            continue
        for unknown in sorted(set(item) - FIELDS):
            errors.append(_error(index, unknown, f"Unknown field {unknown!r}."))

        release = None
        raw_release = item.get("release")
        if raw_release is None:
            errors.append(_error(index, "release", "Required: the release id."))
        elif _whole(raw_release, 1, 2**63) is None:
            errors.append(_error(index, "release", f"{_shown(raw_release)} is not a release id."))
        else:
            release = releases.get(int(raw_release))
            if release is None:
                errors.append(_error(index, "release", f"No release {int(raw_release)}."))
            elif service_ids is not None and release.service_id not in service_ids:
                errors.append(
                    _error(
                        index,
                        "release",
                        f"Release {release.pk} belongs to service {release.service.slug!r}; "
                        "this token may not push samples for it.",
                    )
                )

        metric = None
        key = item.get("metric")
        if key is None:
            errors.append(_error(index, "metric", "Required: the metric key."))
        elif not isinstance(key, str) or key not in metrics:
            known = ", ".join(sorted(metrics)) if metrics else "see the plans endpoint"
            errors.append(
                _error(index, "metric", f"Unknown metric {_shown(key)} (known: {known}).")
            )
        else:
            metric = metrics[key]

        value = item.get("value")
        if value is None:
            errors.append(_error(index, "value", "Required: a number."))
        elif not _number(value):
            errors.append(_error(index, "value", f"{_shown(value)} is not a number."))
        elif isinstance(value, int) and abs(value) > 1e15:
            # Before isnan(): an integer too large for a float would raise OverflowError there.
            errors.append(_error(index, "value", f"{_shown(value)} is out of range."))
        elif math.isnan(value):
            errors.append(_error(index, "value", "NaN is not a measurement."))
        elif math.isinf(value):
            errors.append(_error(index, "value", "Infinity is not a measurement."))
        elif abs(value) > 1e15:
            errors.append(_error(index, "value", f"{value!r} is out of range."))
        elif metric is not None and metric.kind == MetricKind.RATIO and not 0 <= value <= 1:
            errors.append(
                _error(index, "value", f"{metric.key} is a ratio from 0 to 1; got {value!r}.")
            )

        variant = item.get("variant", Variant.TREATMENT)
        if not isinstance(variant, str) or variant not in VARIANTS:
            errors.append(
                _error(
                    index,
                    "variant",
                    f"{_shown(variant)} is not one of {', '.join(Variant.values)}.",
                )
            )

        at = now
        raw_at = item.get("at")
        if raw_at is not None:
            parsed = None
            if isinstance(raw_at, str):
                try:
                    parsed = parse_datetime(raw_at)
                except ValueError:
                    parsed = None
            if parsed is None:
                errors.append(_error(index, "at", f"{raw_at!r} is not an ISO-8601 time."))
            elif timezone.is_naive(parsed):
                errors.append(_error(index, "at", f"{raw_at!r} has no time zone (add Z)."))
            elif parsed > now + FUTURE_LIMIT:
                errors.append(_error(index, "at", f"{raw_at} is more than a day in the future."))
            elif parsed < oldest:
                errors.append(
                    _error(
                        index,
                        "at",
                        f"{raw_at} is older than the {settings.CHECKS_SAMPLE_RETENTION}-day "
                        "retention.",
                    )
                )
            else:
                at = parsed

        count = item.get("count")
        if count is not None and _whole(count, 0, 2**63) is None:
            errors.append(_error(index, "count", f"{_shown(count)} is not a whole number ≥ 0."))

        if len(errors) == before:
            key_ = (release.pk, metric.pk, variant, at)
            # A plain row, not a model instance: building 10,000 of those was a third of a
            # batch's time; the rows become Samples only where the ORM stores them.
            samples.setdefault(
                key_,
                Row(
                    release.pk,
                    metric.pk,
                    variant,
                    at,
                    float(value),
                    int(count) if count is not None else None,
                    now,
                ),
            )
    if errors:
        bad = len({e["index"] for e in errors})
        raise SampleBatchError(
            f"{bad} of {len(items)} sample{'s' if len(items) != 1 else ''} "
            f"{'is' if bad == 1 else 'are'} invalid; nothing was stored.",
            errors[:1000],
        )
    new = list(samples.values())
    if connection.vendor == "postgresql":
        stored = _copy_new(new)
        return IngestOutcome(accepted=len(items), duplicates=len(items) - stored)
    with transaction.atomic():
        existing = set(
            Sample.objects.filter(
                release_id__in={s.release_id for s in new},
                metric_id__in={s.metric_id for s in new},
                at__gte=min(s.at for s in new),
                at__lte=max(s.at for s in new),
            ).values_list("release_id", "metric_id", "variant", "at")
        )
        fresh = [s for s in new if (s.release_id, s.metric_id, s.variant, s.at) not in existing]
        # ignore_conflicts: a concurrent push of the same sample is stored once, without error.
        Sample.objects.bulk_create(
            [Sample(**row._asdict()) for row in fresh], batch_size=2000, ignore_conflicts=True
        )
    return IngestOutcome(accepted=len(items), duplicates=len(items) - len(fresh))


def _copy_new(new: list[Row]) -> int:
    """Store the samples not stored yet, on PostgreSQL; returns how many were new.

    COPY into a temporary table, then one INSERT ... ON CONFLICT DO NOTHING: a third of the
    time of building a 10,000-row INSERT in the ORM (see docs/performance.md), and the conflict
    clause both skips samples stored before and makes a concurrent push of the same ones safe.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # One per connection, emptied at each commit (and here: a test's outer transaction
        # may hold an earlier batch).
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_sample (release_id bigint, "
            "metric_id bigint, variant varchar(10), at timestamptz, value double precision, "
            "count bigint, received_at timestamptz) ON COMMIT DELETE ROWS"
        )
        cursor.execute("TRUNCATE incoming_sample")
        with cursor.connection.cursor().copy(
            "COPY incoming_sample (release_id, metric_id, variant, at, value, count, "
            "received_at) FROM STDIN"
        ) as copy:
            for row in new:
                copy.write_row(row)
        cursor.execute(
            "INSERT INTO checks_sample (release_id, metric_id, variant, at, value, count, "
            "received_at) SELECT release_id, metric_id, variant, at, value, count, received_at "
            "FROM incoming_sample ON CONFLICT (release_id, metric_id, variant, at) DO NOTHING"
        )
        return cursor.rowcount

"""Read-only SQL against a separately configured PostgreSQL database, with a statement timeout.

The connection is opened read-only (every transaction is READ ONLY, so a query that writes is
refused by the server) and with a statement_timeout, whatever the query says. Give the source's
database a read-only role as well: two locks are better than one.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings

from ..choices import Variant
from ..evaluator import Point
from . import Measurements, ProviderError, Window, placeholders, reference_window, variants_for

if TYPE_CHECKING:
    from apps.releases.models import Release

    from ..models import MetricCriterion, MetricDefinition, MetricSource

MAX_ROWS = 100_000


def fetch(
    criterion: MetricCriterion,
    release: Release,
    window: Window,
    source: MetricSource | None = None,
) -> Measurements:
    """Run the source's query once per variant; rows are (at, value[, count])."""
    if source is None:
        raise ProviderError("The SQL source is missing.")
    measurements: Measurements = {}
    for variant in variants_for(criterion):
        span = reference_window(release, window, variant)
        params = {**placeholders(release, variant), "start": span.start, "end": span.end}
        measurements[variant] = [
            point for point in run(source, params) if span.start <= point.at < span.end
        ]
    return measurements


def served(
    release: Release,
    metric: MetricDefinition,
    start: datetime,
    end: datetime,
    source: MetricSource | None = None,
) -> float:
    """The source's query for the treatment over [start, end): its rows' counts, else values."""
    if source is None:
        raise ProviderError("The SQL source is missing.")
    params = {**placeholders(release, Variant.TREATMENT), "start": start, "end": end}
    return sum(
        point.count if point.count is not None else point.value
        for point in run(source, params)
        if start <= point.at < end
    )


def run(source: MetricSource, params: dict[str, Any]) -> list[Point]:
    """Execute the query read-only with a timeout; every failure becomes a ProviderError."""
    import psycopg

    url = settings.CHECKS_SQL_DATABASES.get(source.database)
    if not url:
        raise ProviderError(f"No read-only database named {source.database!r} is configured.")
    timeout_ms = max(1, int(source.timeout_seconds * 1000))
    try:
        with psycopg.connect(
            _dsn(url),
            connect_timeout=max(1, math.ceil(source.timeout_seconds)),
            options=f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on",
            autocommit=False,
        ) as connection:
            connection.read_only = True
            with connection.cursor() as cursor:
                cursor.execute(source.query, params)
                if cursor.description is None:
                    raise ProviderError("The query returned no rows: it must be a SELECT.")
                columns = [c.name.lower() for c in cursor.description]
                rows = cursor.fetchmany(MAX_ROWS + 1)
            connection.rollback()
    except psycopg.errors.QueryCanceled as exc:
        raise ProviderError(
            f"Refused: the query ran past the statement timeout ({source.timeout_seconds:g}s)."
        ) from exc
    except (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.ActiveSqlTransaction) as exc:
        # The second: the query tried to switch its transaction to read-write.
        raise ProviderError(f"Refused: the source is read-only ({_first_line(exc)}).") from exc
    except psycopg.OperationalError as exc:
        raise ProviderError(
            f"The database {source.database!r} is unreachable: {_first_line(exc)}"
        ) from exc
    except psycopg.Error as exc:
        raise ProviderError(f"The query failed: {_first_line(exc)}") from exc
    if len(rows) > MAX_ROWS:
        raise ProviderError(f"The query returned more than {MAX_ROWS} rows; aggregate it.")
    return _points(columns, rows)


def _points(columns: list[str], rows: list[tuple]) -> list[Point]:
    if "at" not in columns or "value" not in columns:
        raise ProviderError(f"The query must return columns `at` and `value`; it gave {columns}.")
    at_i, value_i = columns.index("at"), columns.index("value")
    count_i = columns.index("count") if "count" in columns else None
    points = []
    for row in rows:
        at, value = row[at_i], row[value_i]
        if value is None:
            continue
        if not isinstance(at, datetime):
            raise ProviderError(f"Column `at` must be a timestamp; got {at!r}.")
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        count = row[count_i] if count_i is not None else None
        points.append(Point(at, float(value), float(count) if count is not None else None))
    return points


def _dsn(url: str) -> str:
    # django-environ style postgres:// URLs are libpq URLs already.
    return url.replace("postgres+psycopg://", "postgresql://", 1)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

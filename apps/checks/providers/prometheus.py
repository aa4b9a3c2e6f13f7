"""Prometheus: a PromQL template per service, read through the HTTP query API with a timeout."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..choices import Variant
from ..evaluator import Point
from . import Measurements, ProviderError, Window, placeholders, reference_window, variants_for

if TYPE_CHECKING:
    from apps.releases.models import Release

    from ..models import MetricCriterion, MetricDefinition, MetricSource

# An answer larger than this is not a metric, it is a mistake in the query.
MAX_RESPONSE_BYTES = 5 * 1024 * 1024


def render(template: str, values: dict[str, str]) -> str:
    """Fill {service}, {version}, ... in a PromQL template; other braces are PromQL's own."""
    query = template
    for name, value in values.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        query = query.replace("{" + name + "}", escaped)
    return query


def fetch(
    criterion: MetricCriterion,
    release: Release,
    window: Window,
    source: MetricSource | None = None,
) -> Measurements:
    """Each variant's points: a range query over the window, or an instant one for one interval."""
    if source is None or not source.base_url:
        raise ProviderError("The Prometheus source has no base URL.")
    measurements: Measurements = {}
    for variant in variants_for(criterion):
        query = render(source.query, placeholders(release, variant))
        measurements[variant] = query_points(
            source.base_url,
            query,
            reference_window(release, window, variant),
            timeout=source.timeout_seconds,
        )
    return measurements


def served(
    release: Release,
    metric: MetricDefinition,
    start: datetime,
    end: datetime,
    source: MetricSource | None = None,
) -> float:
    """An instant query at `end`, its {soak} placeholder the range since `start`.

    e.g. sum(increase(http_requests_total{version="{version}"}[{soak}])).
    """
    if source is None or not source.base_url:
        raise ProviderError("The Prometheus source has no base URL.")
    seconds = max(1, int((end - start).total_seconds()))
    values = {**placeholders(release, Variant.TREATMENT), "soak": f"{seconds}s"}
    query = render(source.query, values)
    return query_scalar(source.base_url, query, end, timeout=source.timeout_seconds) or 0.0


def query_points(base_url: str, query: str, window: Window, *, timeout: float) -> list[Point]:
    """Run a query and return one point per interval, stamped inside that interval.

    Prometheus evaluates the expression at the end of each interval (start + step, ..., end):
    the value there describes the interval before it, so it is filed under that interval.
    """
    step = window.step.total_seconds()
    intervals = round((window.end - window.start).total_seconds() / step)
    if intervals <= 1:
        data = _get(base_url, "query", {"query": query, "time": _ts(window.end)}, timeout=timeout)
    else:
        params = {
            "query": query,
            "start": _ts(window.start) + step,
            "end": _ts(window.end),
            "step": step,
        }
        data = _get(base_url, "query_range", params, timeout=timeout)
    return _points(data, step)


def query_scalar(base_url: str, query: str, at: datetime, *, timeout: float) -> float | None:
    """An instant query's single value (e.g. requests served since the stage began)."""
    data = _get(base_url, "query", {"query": query, "time": _ts(at)}, timeout=timeout)
    points = _points(data, 0)
    return points[-1].value if points else None


def _ts(when: datetime) -> float:
    return when.timestamp()


def _get(base_url: str, endpoint: str, params: dict[str, Any], *, timeout: float) -> Any:
    url = f"{base_url.rstrip('/')}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        # Prometheus explains a bad query in a JSON body with a 400 or 422.
        detail = _error_of(exc.read(64 * 1024)) or exc.reason
        raise ProviderError(f"Prometheus answered {exc.code}: {detail}") from exc
    except TimeoutError as exc:
        raise ProviderError(f"Prometheus did not answer within {timeout:g}s.") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise ProviderError(f"Prometheus did not answer within {timeout:g}s.") from exc
        raise ProviderError(f"Prometheus is unreachable at {base_url}: {exc.reason}") from exc
    except OSError as exc:
        raise ProviderError(f"Prometheus is unreachable at {base_url}: {exc}") from exc
    if len(body) > MAX_RESPONSE_BYTES:
        raise ProviderError("Prometheus answered with more than 5 MB; narrow the query.")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ProviderError("Malformed answer from Prometheus: not JSON.") from exc
    if not isinstance(document, dict) or document.get("status") != "success":
        detail = document.get("error") if isinstance(document, dict) else None
        raise ProviderError(f"Prometheus reported an error: {detail or 'no status success'}.")
    data = document.get("data")
    if not isinstance(data, dict) or "resultType" not in data or "result" not in data:
        raise ProviderError("Malformed answer from Prometheus: no data.resultType / result.")
    return data


def _error_of(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    return str(document.get("error", "")) if isinstance(document, dict) else ""


def _points(data: dict[str, Any], step: float) -> list[Point]:
    kind, result = data["resultType"], data["result"]
    try:
        if kind == "scalar":
            pairs = [result]
        elif kind in ("vector", "matrix"):
            if not isinstance(result, list):
                raise ProviderError("Malformed answer from Prometheus: result is not a list.")
            if len(result) > 1:
                raise ProviderError(
                    f"The query returned {len(result)} series; aggregate them into one "
                    "(for example with sum(...) or max(...))."
                )
            if not result:
                return []
            series = result[0]
            pairs = [series["value"]] if kind == "vector" else series["values"]
        else:
            raise ProviderError(f"Prometheus answered a {kind!r}; the query must give numbers.")
        points = []
        for stamp, text in pairs:
            value = float(text)
            if math.isnan(value) or math.isinf(value):
                continue  # no data at that instant (e.g. a ratio over zero requests)
            # Mid-interval: safely inside it, whatever rounding the server applied to the time.
            at = datetime.fromtimestamp(float(stamp) - step / 2, tz=UTC)
            points.append(Point(at=at, value=value))
        return points
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ProviderError(f"Malformed answer from Prometheus: {exc!r}.") from exc

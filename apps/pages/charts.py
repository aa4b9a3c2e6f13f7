"""Metric charts of a release: samples and verdicts grouped into time buckets in SQL, drawn as SVG.

A release may hold millions of samples; the page never reads them one by one. Each chart asks the
database for one row per (metric, variant, bucket) with the sums the evaluator's Stats need, so a
bucket's value is computed the way the checks compute theirs (weighted mean for ratios, mean for
gauges, sum for counters). Buckets widen with the range shown (1 minute up to 1 day) so a chart
never has more than about MAX_BUCKETS points. Three queries for all charts of a release, whatever
the number of samples, results or criteria.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, F, FloatField, Max, Min, Q, Sum
from django.db.models.functions import Floor
from django.utils import timezone

from apps.checks.choices import BadDirection, MetricKind, Reference, Tolerance, Variant, Verdict
from apps.checks.evaluator import Stats
from apps.checks.gate import first_evaluation_due
from apps.checks.models import CheckResult, MetricCriterion, Sample
from apps.checks.providers import baseline_lookback
from apps.checks.providers.push import EpochSeconds
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release, Stage

# What a viewer may pick; "all" is the release's whole life.
RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "all": None,
}
RANGE_LABELS = {
    "1h": "Last hour",
    "6h": "6 hours",
    "24h": "24 hours",
    "7d": "7 days",
    "all": "Whole release",
}
DEFAULT_RANGE = "all"
MAX_BUCKETS = 240
# "Whole release" fits the release: it spans from a little before the start (LEAD of the span,
# at least one bucket, so the first minute is not on the edge) to now or the end, and never less
# than MIN_SPAN, so a release minutes old still shows its first buckets across the whole width.
MIN_SPAN = timedelta(minutes=5)
LEAD = 0.05
BUCKET_STEPS = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(days=1),
]

# Drawing area, in SVG user units (the SVG scales to its container).
WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP = 74, 12, 26
PLOT_BOTTOM = 222  # the verdict strip and the time axis sit below
STRIP_Y = 238
AXIS_Y = 266

GEOMETRY = {
    "width": WIDTH,
    "height": HEIGHT,
    "left": LEFT,
    "right": WIDTH - RIGHT,
    "label_x": LEFT - 6,
    "threshold_x": LEFT + 4,
    "top": TOP - 6,
    "bottom": PLOT_BOTTOM,
    "strip": STRIP_Y + 4,
    "axis": AXIS_Y,
}

VERDICT_ORDER = [Verdict.FAIL, Verdict.WARN, Verdict.INCONCLUSIVE, Verdict.PASS]


def bucket_step(span: timedelta) -> timedelta:
    """The narrowest bucket that keeps the chart under MAX_BUCKETS points."""
    for step in BUCKET_STEPS:
        if span / step <= MAX_BUCKETS:
            return step
    return BUCKET_STEPS[-1]


def time_window(release: Release, range_key: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end] of the range shown: up to now (or the release's end), back by the range;
    for the whole release, its life with a small lead before it."""
    end = release.finished_at or now
    length = RANGES.get(range_key)
    if length is not None:
        return end - length, end
    began = min(release.started_at or release.created_at, end)
    span = max(end - began, MIN_SPAN)
    lead = max(span * LEAD, bucket_step(span))
    return min(began - lead, end - MIN_SPAN), end


@dataclass
class Bucket:
    """One point of a series: the bucket's start and its value (None: no data)."""

    at: datetime
    value: float | None


@dataclass
class Mark:
    """The verdicts of one bucket: the worst decides the shape, all are counted in the title."""

    at: datetime
    verdict: str
    counts: dict[str, int]
    x: float = 0.0

    @property
    def title(self) -> str:
        parts = [f"{n} {v}" for v in VERDICT_ORDER if (n := self.counts.get(v, 0))]
        return f"{_clock(self.at)}: {', '.join(parts)}"

    # Shapes differ by verdict (colour is never the only signal): pass ●, inconclusive ○,
    # warn ▲, fail ■, all on the strip under the plot.
    @property
    def y(self) -> int:
        return STRIP_Y

    @property
    def triangle(self) -> str:
        x, y = self.x, STRIP_Y
        return f"{x},{y - 6} {round(x + 6, 1)},{y + 5} {round(x - 6, 1)},{y + 5}"

    @property
    def square_x(self) -> float:
        return round(self.x - 5, 1)


@dataclass
class Line:
    """A drawn line: a series, a threshold or a limit following the reference."""

    key: str  # treatment, control, baseline, warning, critical
    label: str
    path: str = ""
    y: float | None = None  # horizontal lines
    label_y: float = 0.0
    # Points with no neighbour (a single bucket between gaps): a path of one move-to draws
    # nothing, so they are drawn as markers — the one sample that caused a rollback included.
    dots: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class StageLabel:
    """A stage change: a vertical line at x, and its label on the first row where it fits."""

    x: float
    label: str
    anchor: str  # "start" (reads rightwards) or "end" (near the right edge)
    y: float
    title: str  # the full label, also when the drawn one had to be shortened or left out


@dataclass
class Chart:
    """Everything one criterion's chart shows, with its geometry computed."""

    criterion: MetricCriterion
    latest: CheckResult | None
    series: dict[str, list[Bucket]] = field(default_factory=dict)
    thresholds: list[Line] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    stage_lines: list[StageLabel] = field(default_factory=list)
    source: str = "samples"  # or "results" when the metric is read remotely (no samples)
    scope: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    # Set while the current stage has no result of this criterion yet: when the tick will look.
    pending_due: datetime | None = None

    @property
    def latest_rule(self) -> str:
        """The threshold the latest warn or fail crossed, by its level: "warning > 2 %"."""
        latest = self.latest
        if latest is None or latest.threshold is None or latest.verdict not in ("warn", "fail"):
            return ""
        level = "warning" if latest.verdict == "warn" else "critical"
        threshold = self.criterion.format_threshold(latest.threshold)
        return f"{level} threshold {self.criterion.comparator} {threshold}"

    @property
    def latest_value(self) -> str:
        if self.latest is None or self.latest.value is None:
            return ""
        return self.criterion.metric.format(self.latest.value)

    @property
    def has_data(self) -> bool:
        return any(b.value is not None for s in self.series.values() for b in s)

    @property
    def title(self) -> str:
        return f"{self.criterion.metric.name or self.criterion.metric.key}: {self.criterion.label}"


@dataclass
class ChartSet:
    """The charts of a release for one range, and how they were bucketed."""

    charts: list[Chart]
    range_key: str
    start: datetime
    end: datetime
    step: timedelta
    g: dict[str, int] = field(default_factory=lambda: dict(GEOMETRY))

    @property
    def step_label(self) -> str:
        minutes = int(self.step.total_seconds() // 60)
        if minutes < 60:
            return f"{minutes} minute{'s' if minutes != 1 else ''}"
        hours = minutes // 60
        if hours < 24:
            return f"{hours} hour{'s' if hours != 1 else ''}"
        return "1 day"


# --- data --------------------------------------------------------------------------------------


def _slot(step: timedelta) -> Floor:
    # SQLite computes the epoch through julianday(), a few microseconds off: a sample stamped
    # exactly on a bucket's edge would otherwise land in the bucket before.
    return Floor((EpochSeconds("at") + 0.001) / step.total_seconds())


def _at(slot: float, step: timedelta) -> datetime:
    return datetime.fromtimestamp(int(slot) * step.total_seconds(), tz=UTC)


def _sample_rows(
    release: Release, metric_ids: set[int], start: datetime, end: datetime, step: timedelta
) -> dict[tuple[int, str], dict[datetime, Stats]]:
    """One SQL query: per metric, variant and bucket, the sums behind the bucket's value."""
    rows = (
        Sample.objects.filter(
            release_id=release.pk,
            metric_id__in=metric_ids,
            variant__in=[Variant.TREATMENT, Variant.CONTROL],
            at__gte=start,
            at__lte=end,
        )
        .annotate(slot=_slot(step))
        .values("metric_id", "variant", "slot")
        .annotate(
            n=Count("id"),
            total=Sum("value"),
            weighted=Sum(F("value") * F("count"), output_field=FloatField()),
            weight=Sum("count", output_field=FloatField()),
            high=Max("value"),
            low=Min("value"),
        )
        .order_by()
    )
    found: dict[tuple[int, str], dict[datetime, Stats]] = defaultdict(dict)
    for row in rows:
        found[(row["metric_id"], row["variant"])][_at(row["slot"], step)] = Stats(
            n=row["n"],
            total=row["total"] or 0.0,
            weighted=row["weighted"] or 0.0,
            weight=row["weight"] or 0.0,
            maximum=row["high"],
            minimum=row["low"],
        )
    return found


def _baselines(release: Release, metric_ids: set[int]) -> dict[int, Stats]:
    """Each metric's baseline (the time before the release) as one Stats: one query."""
    if not metric_ids:
        return {}
    before = release.started_at or release.created_at
    rows = (
        Sample.objects.filter(
            release_id=release.pk,
            metric_id__in=metric_ids,
            variant=Variant.BASELINE,
            at__gte=before - baseline_lookback(),
        )
        .values("metric_id")
        .annotate(
            n=Count("id"),
            total=Sum("value"),
            weighted=Sum(F("value") * F("count"), output_field=FloatField()),
            weight=Sum("count", output_field=FloatField()),
        )
        .order_by()
    )
    return {
        r["metric_id"]: Stats(
            n=r["n"],
            total=r["total"] or 0.0,
            weighted=r["weighted"] or 0.0,
            weight=r["weight"] or 0.0,
        )
        for r in rows
    }


def _result_rows(
    release: Release, criterion_ids: list[int], start: datetime, end: datetime, step: timedelta
) -> dict[int, dict[datetime, dict[str, Any]]]:
    """One SQL query: per criterion and bucket, how many of each verdict and the mean values."""
    rows = (
        CheckResult.objects.filter(
            release_id=release.pk, criterion_id__in=criterion_ids, at__gte=start, at__lte=end
        )
        .annotate(slot=_slot(step))
        .values("criterion_id", "slot")
        .annotate(
            **{v: Count("id", filter=Q(verdict=v)) for v in VERDICT_ORDER},
            value=Avg("value"),
            reference=Avg("reference_value"),
        )
        .order_by()
    )
    found: dict[int, dict[datetime, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        found[row["criterion_id"]][_at(row["slot"], step)] = row
    return found


def release_charts(
    release: Release,
    criteria: Sequence[MetricCriterion],
    latest: dict[int, CheckResult],
    stages: Sequence[Stage],
    *,
    range_key: str = DEFAULT_RANGE,
    now: datetime | None = None,
) -> ChartSet:
    """One chart per criterion over the chosen range, from at most three aggregate queries."""
    now = now or timezone.now()
    range_key = range_key if range_key in RANGES else DEFAULT_RANGE
    start, end = time_window(release, range_key, now)
    step = bucket_step(end - start)
    charts: list[Chart] = []
    if criteria:
        metric_ids = {c.metric_id for c in criteria}
        samples = _sample_rows(release, metric_ids, start, end, step)
        results = _result_rows(release, [c.pk for c in criteria], start, end, step)
        baseline_ids = {c.metric_id for c in criteria if c.reference == Reference.BASELINE}
        baselines = _baselines(release, baseline_ids)
        slots = _slots(start, end, step)
        for criterion in criteria:
            chart = _build(criterion, latest.get(criterion.pk), samples, results, baselines, slots)
            chart.pending_due = _pending_due(release, stages, chart.latest, now)
            _layout(chart, start, end, step, stages)
            charts.append(chart)
    return ChartSet(charts=charts, range_key=range_key, start=start, end=end, step=step)


def _pending_due(
    release: Release, stages: Sequence[Stage], latest: CheckResult | None, now: datetime
) -> datetime | None:
    """When the running stage's first evaluation is due, if it has none yet (else None)."""
    stage = next((s for s in stages if s.pk == release.current_stage_id), None)
    if release.status != ReleaseStatus.IN_PROGRESS or stage is None or stage.entered_at is None:
        return None
    if latest is not None and latest.at >= stage.entered_at:
        return None
    return first_evaluation_due(stage, None, now)


def _slots(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    seconds = step.total_seconds()
    first = math.floor(start.timestamp() / seconds)
    last = math.floor(end.timestamp() / seconds)
    return [datetime.fromtimestamp(i * seconds, tz=UTC) for i in range(first, last + 1)]


def _build(
    criterion: MetricCriterion,
    latest: CheckResult | None,
    samples: dict[tuple[int, str], dict[datetime, Stats]],
    results: dict[int, dict[datetime, dict[str, Any]]],
    baselines: dict[int, Stats],
    slots: list[datetime],
) -> Chart:
    metric = criterion.metric
    chart = Chart(criterion=criterion, latest=latest)
    if criterion.stage_template_id:
        chart.scope = f"watches stage {criterion.stage_template.name} only"
    treatment = samples.get((metric.pk, Variant.TREATMENT), {})
    control = samples.get((metric.pk, Variant.CONTROL), {})
    by_slot = results.get(criterion.pk, {})
    if treatment or control:
        chart.series[Variant.TREATMENT] = [
            Bucket(at, treatment[at].value(metric.kind) if at in treatment else None)
            for at in slots
        ]
        if control:
            chart.series[Variant.CONTROL] = [
                Bucket(at, control[at].value(metric.kind) if at in control else None)
                for at in slots
            ]
    elif by_slot:
        # Read from Prometheus or SQL, not stored: the values the evaluations measured.
        chart.source = "results"
        chart.series[Variant.TREATMENT] = [
            Bucket(at, by_slot[at]["value"] if at in by_slot else None) for at in slots
        ]
        if criterion.reference == Reference.CONTROL:
            chart.series[Variant.CONTROL] = [
                Bucket(at, by_slot[at]["reference"] if at in by_slot else None) for at in slots
            ]
    for at in slots:
        row = by_slot.get(at)
        if row is None:
            continue
        counts = {v: row[v] for v in VERDICT_ORDER if row[v]}
        if counts:
            worst = next(v for v in VERDICT_ORDER if counts.get(v))
            chart.marks.append(Mark(at=at, verdict=worst, counts=counts))
    baseline = baselines.get(metric.pk)
    chart.thresholds = _thresholds(criterion, chart, baseline)
    return chart


def _limit(reference: float, threshold: float, criterion: MetricCriterion) -> float:
    """The release's value at which `worse_by(value, reference)` reaches the threshold."""
    sign = -1.0 if criterion.metric.bad_direction == BadDirection.LOWER else 1.0
    if criterion.tolerance == Tolerance.ABSOLUTE:
        return reference + sign * threshold
    return reference + sign * abs(reference) * threshold / 100


def _thresholds(criterion: MetricCriterion, chart: Chart, baseline: Stats | None) -> list[Line]:
    """Warning and critical: flat lines for absolute criteria, limits that follow the control
    line (or the baseline) for relative ones."""
    lines = []
    for key, value in (
        ("warning", criterion.warning_threshold),
        ("critical", criterion.critical_threshold),
    ):
        if value is None:
            continue
        label = f"{key} {criterion.comparator} {criterion.format_threshold(value)}"
        if criterion.reference == Reference.ABSOLUTE:
            lines.append(Line(key=key, label=label, y=value))
        elif criterion.reference == Reference.BASELINE:
            base = baseline.value(criterion.metric.kind) if baseline else None
            if base is not None:
                lines.append(
                    Line(key=key, label=f"{label} vs baseline", y=_limit(base, value, criterion))
                )
        else:
            control = chart.series.get(Variant.CONTROL, [])
            limit = [
                Bucket(b.at, None if b.value is None else _limit(b.value, value, criterion))
                for b in control
            ]
            if any(b.value is not None for b in limit):
                chart.series[f"limit-{key}"] = limit
                lines.append(Line(key=key, label=f"{label} vs control"))
    return lines


# --- geometry ----------------------------------------------------------------------------------


def _clock(at: datetime) -> str:
    return timezone.localtime(at).strftime("%H:%M")


def _nice_ticks(low: float, high: float, count: int = 4, whole: bool = False) -> list[float]:
    span = high - low
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 12))
        value += step
    return ticks


def _layout(
    chart: Chart, start: datetime, end: datetime, step: timedelta, stages: Sequence[Stage]
) -> None:
    """Scale the series into the drawing area and lay out the axes, marks and stage changes."""
    metric = chart.criterion.metric
    values = [b.value for s in chart.series.values() for b in s if b.value is not None]
    values += [t.y for t in chart.thresholds if t.y is not None]
    low = min([0.0, *values]) if values else 0.0
    high = max(values) if values else 1.0
    if metric.kind == MetricKind.RATIO:
        high = min(max(high * 1.15, 0.01), 1.0) if high <= 1 else high * 1.15
    else:
        high = high * 1.15 if high > 0 else 1.0
    if high <= low:
        high = low + 1.0
    span_seconds = max((end - start).total_seconds(), 1.0)
    plot_width = WIDTH - LEFT - RIGHT

    def x_of(at: datetime) -> float:
        # A bucket is drawn at its middle, clamped to the range shown.
        middle = at + step / 2
        ratio = (middle - start).total_seconds() / span_seconds
        return round(LEFT + plot_width * min(max(ratio, 0.0), 1.0), 1)

    def y_of(value: float) -> float:
        ratio = (value - low) / (high - low)
        return round(PLOT_BOTTOM - (PLOT_BOTTOM - TOP) * ratio, 1)

    for key, buckets in chart.series.items():
        path, dots = _trace(buckets, x_of, y_of)
        if key.startswith("limit-"):
            level = key.removeprefix("limit-")
            for line in chart.thresholds:
                if line.key == level:
                    line.path, line.dots = path, dots
                    last = next((b for b in reversed(buckets) if b.value is not None), None)
                    line.label_y = y_of(last.value) - 4 if last else TOP
            continue
        label = {
            Variant.TREATMENT: "this release (treatment)",
            Variant.CONTROL: "the rest (control)",
        }.get(key, key)
        chart.lines.append(Line(key=key, label=label, path=path, dots=dots))
    for line in chart.thresholds:
        if line.y is not None:
            line.label_y = y_of(line.y) - 4
            line.y = y_of(line.y)
    for mark in chart.marks:
        mark.x = x_of(mark.at)
    whole = metric.kind == MetricKind.COUNTER
    chart.y_ticks = [(y_of(v), metric.format(v)) for v in _nice_ticks(low, high, whole=whole)]
    span = end - start
    fmt = "%H:%M" if span <= timedelta(days=1) else "%d %b %H:%M"
    chart.x_ticks = [
        (
            round(LEFT + plot_width * i / 4, 1),
            timezone.localtime(start + span * i / 4).strftime(fmt),
        )
        for i in range(5)
    ]
    changes = []
    for stage in stages:
        if stage.entered_at and start < stage.entered_at <= end:
            ratio = (stage.entered_at - start).total_seconds() / span_seconds
            changes.append((round(LEFT + plot_width * ratio, 1), stage))
    chart.stage_lines = _stage_labels(changes)
    chart.rows = _table_rows(chart)


def _trace(
    buckets: Sequence[Bucket], x_of: Any, y_of: Any
) -> tuple[str, list[tuple[float, float]]]:
    """An SVG path through the runs of buckets with data (a gap is a gap in the line), and the
    points that stand alone, to be drawn as markers."""
    runs: list[list[tuple[float, float]]] = [[]]
    for bucket in buckets:
        if bucket.value is None or not math.isfinite(bucket.value):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x_of(bucket.at), y_of(bucket.value)))
    commands = []
    dots = []
    for run in runs:
        if len(run) == 1:
            dots.append(run[0])
        elif run:
            commands.extend(f"{'L' if i else 'M'}{x},{y}" for i, (x, y) in enumerate(run))
    return " ".join(commands), dots


# Stage labels: about 6.2 units per character at the labels' 11 px, and three rows — one above
# the plot, two along its top edge (drawn with a halo so the lines under them stay legible).
LABEL_CHAR_WIDTH = 6.2
LABEL_GAP = 6.0
LABEL_ROWS = (TOP - 12, TOP + 12, TOP + 26)


def _stage_label_text(stage: Stage) -> tuple[str, str]:
    """The full label and its short form (the traffic only), without "25% 25%" repeats."""
    share = f"{stage.traffic_percentage}%"
    compact = stage.name.replace(" ", "")
    full = stage.name if compact.endswith(share) else f"{stage.name} {share}"
    return full, share


def _stage_labels(changes: list[tuple[float, Stage]]) -> list[StageLabel]:
    """Place each stage change's label on the first row where it overlaps no other label; when
    the full label fits on no row, its traffic share alone; when that fits nowhere either (stages
    seconds apart), the line carries the label as its tooltip only."""
    taken: list[list[tuple[float, float]]] = [[] for _ in LABEL_ROWS]
    placed = []
    for x, stage in changes:
        full, short = _stage_label_text(stage)
        chosen = None
        for text in (full, short):
            width = len(text) * LABEL_CHAR_WIDTH + 3
            # Near the right edge the label reads leftwards, so it stays inside the chart.
            anchor = "end" if x + width > WIDTH - RIGHT else "start"
            left, right = (x - width, x) if anchor == "end" else (x, x + width)
            for row, spans in enumerate(taken):
                if all(right + LABEL_GAP <= a or left >= b + LABEL_GAP for a, b in spans):
                    spans.append((left, right))
                    chosen = StageLabel(x, text, anchor, LABEL_ROWS[row], full)
                    break
            if chosen:
                break
        placed.append(chosen or StageLabel(x, "", "start", LABEL_ROWS[0], full))
    return placed


def _table_rows(chart: Chart) -> list[dict[str, Any]]:
    """The chart as a table (for screen readers and exact values): buckets with data only."""
    metric = chart.criterion.metric
    treatment = chart.series.get(Variant.TREATMENT, [])
    control = {b.at: b.value for b in chart.series.get(Variant.CONTROL, [])}
    marks = {m.at: m for m in chart.marks}
    rows = []
    for bucket in treatment:
        mark = marks.get(bucket.at)
        if bucket.value is None and bucket.at not in control and mark is None:
            continue
        if bucket.value is None and control.get(bucket.at) is None and mark is None:
            continue
        rows.append(
            {
                "at": bucket.at,
                "treatment": metric.format(bucket.value) if bucket.value is not None else "—",
                "control": metric.format(control[bucket.at])
                if control.get(bucket.at) is not None
                else "—",
                "verdicts": mark.title.split(": ", 1)[1] if mark else "",
            }
        )
    return rows

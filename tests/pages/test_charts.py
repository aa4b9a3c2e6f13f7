"""Chart data: grouped per time bucket in SQL the way the checks combine samples, buckets widened
with the range, gaps kept as gaps, and thresholds drawn where the criterion would breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.checks.choices import MetricKind, Reference, Tolerance, Variant, Verdict
from apps.checks.models import CheckResult, CheckRun, MetricCriterion, MetricDefinition, Sample
from apps.core.actors import Actor
from apps.pages import charts
from apps.releases.models import Stage
from apps.rollouts import transitions
from tests.factories import PlanFactory, make_release

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def started(production):
    plan = PlanFactory(
        slug="charted",
        stages=[("canary", 5, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )
    release = make_release(plan=plan, environment=production)
    with time_machine.travel(T0, tick=False):
        transitions.start(release, actor=Actor.system("tests"))
    release.refresh_from_db()
    return release


@pytest.fixture
def ratio(db) -> MetricDefinition:
    return MetricDefinition.objects.create(
        key="error_rate", name="Error rate", kind=MetricKind.RATIO
    )


def criterion(release, metric, **fields) -> MetricCriterion:
    return MetricCriterion.objects.create(
        plan=release.plan,
        metric=metric,
        **{"comparator": ">", "critical_threshold": 0.05, **fields},
    )


def sample(release, metric, at, value, count=None, variant=Variant.TREATMENT) -> Sample:
    return Sample.objects.create(
        release=release, metric=metric, at=at, value=value, count=count, variant=variant
    )


def draw(release, criteria, range_key="all", now=None, stages=None):
    now = now or T0 + timedelta(minutes=30)
    stages = stages if stages is not None else list(release.stages.order_by("position"))
    return charts.release_charts(release, criteria, {}, stages, range_key=range_key, now=now)


def values(chart, variant=Variant.TREATMENT) -> dict[datetime, float]:
    return {b.at: b.value for b in chart.series[variant] if b.value is not None}


def test_a_bucket_is_the_count_weighted_mean_like_the_checks(started, ratio):
    watch = criterion(started, ratio, warning_threshold=0.02)
    minute = T0 + 5 * MINUTE
    sample(started, ratio, minute + timedelta(seconds=5), 0.01, count=100)
    sample(started, ratio, minute + timedelta(seconds=40), 0.04, count=300)
    sample(started, ratio, minute + MINUTE, 0.02, count=50)

    chart = draw(started, [watch]).charts[0]
    assert values(chart) == {minute: pytest.approx(0.0325), minute + MINUTE: 0.02}
    assert [line.key for line in chart.thresholds] == ["warning", "critical"]
    assert chart.thresholds[1].label == "critical > 5 %"


def test_buckets_widen_with_the_range_and_never_pass_the_limit(started, ratio):
    watch = criterion(started, ratio)
    now = T0 + timedelta(days=20)
    Sample.objects.bulk_create(
        Sample(release=started, metric=ratio, at=T0 + i * 10 * MINUTE, value=0.01, count=10)
        for i in range(20 * 24 * 6)
    )
    expected = {"1h": MINUTE, "6h": 5 * MINUTE, "24h": 15 * MINUTE, "7d": timedelta(hours=1)}
    expected["all"] = timedelta(hours=3)
    stages = list(started.stages.all())
    for key, step in expected.items():
        with CaptureQueriesContext(connection) as queries:
            drawn = draw(started, [watch], key, now=now, stages=stages)
        assert drawn.step == step, key
        assert len(drawn.charts[0].series[Variant.TREATMENT]) <= charts.MAX_BUCKETS + 1
        assert len(queries) == 2  # samples and verdicts, grouped per bucket in SQL


def test_a_gap_in_the_data_is_a_gap_in_the_line(started, ratio):
    watch = criterion(started, ratio)
    for minute in (1, 2, 6, 7):
        sample(started, ratio, T0 + minute * MINUTE + timedelta(seconds=1), 0.01)
    path = next(line.path for line in draw(started, [watch]).charts[0].lines)
    assert path.count("M") == 2 and path.count("L") == 2


def test_relative_thresholds_follow_the_control_line(started, ratio):
    watch = criterion(
        started,
        ratio,
        reference=Reference.CONTROL,
        tolerance=Tolerance.RELATIVE,
        critical_threshold=50,
    )
    for minute in range(3):
        at = T0 + minute * MINUTE + timedelta(seconds=1)
        sample(started, ratio, at, 0.01)
        sample(started, ratio, at, 0.02 + minute * 0.01, variant=Variant.CONTROL)
    chart = draw(started, [watch]).charts[0]
    limit = chart.series["limit-critical"]
    assert [round(b.value, 4) for b in limit if b.value is not None] == [0.03, 0.045, 0.06]
    assert chart.thresholds[0].path.startswith("M") and chart.thresholds[0].y is None
    assert chart.thresholds[0].label == "critical > 50 % vs control"


def test_verdicts_are_marked_per_bucket_worst_first(started, ratio):
    watch = criterion(started, ratio)
    run = CheckRun.objects.create(release=started)
    for seconds, verdict in ((5, Verdict.PASS), (20, Verdict.WARN), (40, Verdict.PASS)):
        CheckResult.objects.create(
            run=run,
            release=started,
            criterion=watch,
            label="x",
            level="ok",
            verdict=verdict,
            at=T0 + 3 * MINUTE + timedelta(seconds=seconds),
            value=0.01,
        )
    CheckResult.objects.create(
        run=run,
        release=started,
        criterion=watch,
        label="x",
        level="no_data",
        verdict=Verdict.INCONCLUSIVE,
        at=T0 + 4 * MINUTE,
    )
    chart = draw(started, [watch]).charts[0]
    assert [(m.verdict, m.counts) for m in chart.marks] == [
        (Verdict.WARN, {"warn": 1, "pass": 2}),
        (Verdict.INCONCLUSIVE, {"inconclusive": 1}),
    ]
    assert chart.marks[0].title == "09:03: 1 warn, 2 pass"
    # No samples stored (a Prometheus or SQL source): the line shows what the checks measured.
    assert chart.source == "results"
    assert values(chart) == {T0 + 3 * MINUTE: 0.01}


def test_a_point_alone_between_gaps_is_drawn_as_a_marker(started, ratio):
    # The one sample that caused a rollback, minutes after the last: a path of one move-to
    # would draw nothing.
    watch = criterion(started, ratio)
    for minute in (1, 2, 3):
        sample(started, ratio, T0 + minute * MINUTE + timedelta(seconds=1), 0.01)
    sample(started, ratio, T0 + 9 * MINUTE + timedelta(seconds=1), 0.09)
    line = draw(started, [watch]).charts[0].lines[0]
    assert line.path.count("M") == 1 and line.path.count("L") == 2
    assert len(line.dots) == 1
    x, y = line.dots[0]
    assert y < min(float(c.split(",")[1]) for c in line.path.split())  # 9 % is above 1 %


def test_stage_labels_minutes_apart_never_overprint(started, ratio):
    watch = criterion(started, ratio)
    stages = [
        Stage(release=started, position=i, name=f"{share}%", traffic_percentage=share)
        for i, share in enumerate((1, 5, 10, 15, 25, 50))
    ]
    for i, stage in enumerate(stages):
        stage.entered_at = T0 + i * MINUTE
    placed = draw(started, [watch], now=T0 + 4 * 60 * MINUTE, stages=stages).charts[0].stage_lines
    assert [label.title for label in placed] == ["1%", "5%", "10%", "15%", "25%", "50%"]
    boxes = []
    for label in placed:
        if label.label:
            width = len(label.label) * charts.LABEL_CHAR_WIDTH
            left = label.x - width if label.anchor == "end" else label.x
            boxes.append((label.y, left, left + width))
    assert len({y for y, _, _ in boxes}) > 1  # stacked on more than one row
    for i, (y, left, right) in enumerate(boxes):
        for other_y, other_left, other_right in boxes[i + 1 :]:
            if y == other_y:
                assert right <= other_left or left >= other_right, boxes


def test_the_whole_release_fits_a_release_minutes_old(started, ratio):
    watch = criterion(started, ratio)
    for minute in range(4):
        sample(started, ratio, T0 + minute * MINUTE + timedelta(seconds=1), 0.01)
    chart_set = draw(started, [watch], now=T0 + 4 * MINUTE)
    assert chart_set.end - chart_set.start <= timedelta(minutes=6)
    xs = [float(c[1:].split(",")[0]) for c in chart_set.charts[0].lines[0].path.split()]
    plot = charts.WIDTH - charts.LEFT - charts.RIGHT
    assert (max(xs) - min(xs)) / plot > 0.6  # was 5 % of the width with a fixed hour
    # A fixed range keeps its length.
    hour = draw(started, [watch], range_key="1h", now=T0 + 4 * MINUTE)
    assert hour.end - hour.start == timedelta(hours=1)

"""The gate asks the metric checks: criteria passed over the soak, and enough traffic served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.checks.choices import MetricKind
from apps.checks.models import MetricDefinition
from apps.core.actors import Actor
from apps.releases.choices import ReleaseStatus
from apps.rollouts import gate, transitions
from apps.rollouts.breach_response import run_checks
from apps.rollouts.tasks import tick
from tests.checks.conftest import criterion, push
from tests.factories import PlanFactory, make_release

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 2, 9, 0, 30, tzinfo=UTC)
SYSTEM = Actor.system("tests")


METRIC_KINDS = ("metrics", "metrics_pending", "traffic")


def metric_blockers(release) -> list[str]:
    release.refresh_from_db()
    return [b.detail for b in gate.evaluate(release).blockers if b.kind in METRIC_KINDS]


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def soaking_release(production, soak: timedelta = timedelta(hours=1), auto: bool = False):
    plan = PlanFactory(
        slug=f"soak-{int(soak.total_seconds())}-{auto}",
        stages=[("canary", 5, soak, auto), ("full", 100, timedelta(0), False)],
    )
    release = make_release(plan=plan, environment=production)
    transitions.start(release, actor=SYSTEM)
    return plan, release


def test_criteria_without_a_pass_block_the_gate(clock, production, error_rate):
    plan, release = soaking_release(production, soak=timedelta(0))
    criterion(plan, error_rate)

    # Pending, not failing: when the tick will first look (one slot after the stage began).
    assert metric_blockers(release) == [
        "Metric check error_rate > 5 % is pending: not evaluated yet; the first evaluation is "
        f"due in about 1m ({timezone.localtime(START + timedelta(minutes=1)):%H:%M})."
    ]
    run_checks()  # no samples: inconclusive
    assert metric_blockers(release) == [
        "Metric check error_rate > 5 % is pending: no pass yet (latest inconclusive — 0 "
        "sample(s) in 1m; needs 1.); the next evaluation is due in about 1m "
        f"({timezone.localtime(START + timedelta(minutes=1)):%H:%M})."
    ]
    # Nobody evaluates (the worker is down): it says so instead of waiting quietly.
    clock.shift(timedelta(minutes=5))
    assert metric_blockers(release)[0].endswith("ago): is the worker running?.")
    clock.shift(timedelta(minutes=-5))
    push(release, error_rate, [0.01], end=START + timedelta(minutes=1))
    clock.shift(timedelta(minutes=1))
    run_checks()
    assert metric_blockers(release) == []


def test_a_warning_during_the_soak_blocks_until_it_ages_out(clock, production, error_rate):
    plan, release = soaking_release(production, soak=timedelta(minutes=30))
    criterion(plan, error_rate, warning_threshold=0.02, on_critical="notify")
    push(release, error_rate, [0.03] + [0.01] * 40, end=START + timedelta(minutes=40))

    run_checks()  # 0.03: warn
    for minute in range(1, 35):
        run_checks(now=START + timedelta(minutes=minute))
    clock.shift(timedelta(minutes=29))
    assert metric_blockers(release) == [
        "Metric check error_rate (warning > 2 %, critical > 5 %) warned or failed 1 time during "
        "the soak (latest pass, 1 %)."
    ]
    clock.shift(timedelta(minutes=2))  # the warning is now older than the 30-minute soak
    assert metric_blockers(release) == []


def test_a_warning_names_the_warning_threshold_that_fired(clock, production, error_rate):
    plan, release = soaking_release(production, soak=timedelta(minutes=30))
    criterion(plan, error_rate, warning_threshold=0.02, on_critical="notify")
    push(release, error_rate, [0.03118], end=START)

    run_checks()

    assert metric_blockers(release) == [
        "Metric check error_rate (warning > 2 %, critical > 5 %) warned or failed 1 time during "
        "the soak (latest warn, 3.118 % against the warning threshold > 2 %)."
    ]


def test_dry_run_criteria_never_block(clock, production, error_rate):
    plan, release = soaking_release(production, soak=timedelta(0))
    criterion(plan, error_rate, dry_run=True)
    push(release, error_rate, [0.5], end=START)

    run_checks()

    assert metric_blockers(release) == []


def test_a_failing_criterion_holds_auto_advance(clock, production, error_rate):
    plan, release = soaking_release(production, soak=timedelta(0), auto=True)
    criterion(plan, error_rate, on_critical="notify")
    push(release, error_rate, [0.09], end=START)

    assert tick()["advanced"] == 0

    release.refresh_from_db()
    assert (release.status, release.current_stage.name) == (ReleaseStatus.IN_PROGRESS, "canary")


def test_traffic_soak_shows_progress_and_an_estimate(clock, production):
    requests = MetricDefinition.objects.create(
        key="requests", name="Requests", kind=MetricKind.COUNTER, counts_traffic=True
    )
    plan = PlanFactory(
        slug="traffic",
        stages=[("canary", 5, timedelta(hours=1), False), ("full", 100, timedelta(0), False)],
    )
    plan.stages.filter(name="canary").update(min_requests=1000)
    release = make_release(plan=plan, environment=production)
    transitions.start(release, actor=SYSTEM)
    clock.shift(timedelta(minutes=30))
    push(release, requests, [20] * 10, end=START + timedelta(minutes=30), count=None)

    blockers = metric_blockers(release)

    # 400 requests in 30 minutes: 600 more need 45 minutes, longer than the 30 left of soak.
    assert blockers == [
        "Stage canary has served 400 of 1,000 requests; at the current rate it may advance in "
        "about 45m (around 2026-11-02 10:15 UTC)."
    ]
    push(release, requests, [300, 300], end=START + timedelta(minutes=20), count=None)
    assert metric_blockers(release) == []


def test_traffic_soak_without_traffic_says_so(clock, production, error_rate):
    plan = PlanFactory(slug="t0", stages=[("canary", 5, timedelta(0), False)])
    plan.stages.update(min_requests=50)
    release = make_release(plan=plan, environment=production)
    transitions.start(release, actor=SYSTEM)

    assert metric_blockers(release) == [
        "Stage canary has served 0 of 50 requests; no traffic counted yet."
    ]
    push(release, error_rate, [0.01], end=START + timedelta(minutes=1), count=60, per_minute=1)
    clock.shift(timedelta(minutes=1))
    assert metric_blockers(release) == []


def test_traffic_soak_counted_by_a_prometheus_query(clock, production, service):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse

    from apps.checks.choices import SourceKind
    from apps.checks.models import MetricSource

    asked: list[str] = []
    served = {"value": "400"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            query = parse_qs(urlparse(self.path).query)
            asked.append(query["query"][0])
            body = json.dumps(
                {
                    "status": "success",
                    "data": {
                        "resultType": "vector",
                        "result": [{"metric": {}, "value": [query["time"][0], served["value"]]}],
                    },
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        requests = MetricDefinition.objects.create(
            key="requests", name="Requests", kind=MetricKind.COUNTER, counts_traffic=True
        )
        MetricSource.objects.create(
            metric=requests,
            service=service,
            kind=SourceKind.PROMETHEUS,
            base_url=f"http://127.0.0.1:{server.server_address[1]}",
            query='sum(increase(http_requests_total{version="{version}"}[{soak}]))',
        )
        plan = PlanFactory(slug="prom-traffic", stages=[("canary", 5, timedelta(0), False)])
        plan.stages.update(min_requests=1000)
        release = make_release(service=service, plan=plan, environment=production, version="7.0")
        transitions.start(release, actor=SYSTEM)
        clock.shift(timedelta(minutes=20))

        assert metric_blockers(release) == [
            "Stage canary has served 400 of 1,000 requests; at the current rate it may advance "
            "in about 30m (around 2026-11-02 09:50 UTC)."
        ]
        assert asked[-1] == 'sum(increase(http_requests_total{version="7.0"}[1200s]))'
        served["value"] = "1000"
        assert metric_blockers(release) == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_fresh_stage_waits_amber_and_a_breach_turns_red(clock, production, error_rate):
    """Right after a healthy advance nothing has been measured yet: the light only waits."""
    from apps.pages.presenters import gate_light

    plan, release = soaking_release(production, soak=timedelta(0))
    criterion(plan, error_rate, warning_threshold=0.02, on_critical="notify")
    release.refresh_from_db()
    verdict = gate.evaluate(release)
    assert [b.kind for b in verdict.blockers] == ["metrics_pending"]
    assert gate_light(verdict).colour == "amber"

    push(release, error_rate, [0.03], end=START + timedelta(minutes=1))
    clock.shift(timedelta(minutes=1))
    run_checks()  # a warning: something is wrong, not just waiting
    release.refresh_from_db()
    verdict = gate.evaluate(release)
    assert [b.kind for b in verdict.blockers] == ["metrics"]
    assert gate_light(verdict).colour == "red"


def test_traffic_soak_with_its_source_down_says_the_source_failed(
    clock, production, service, settings
):
    from apps.checks.choices import SourceKind
    from apps.checks.models import MetricSource

    settings.CHECKS_SQL_DATABASES = {}  # the monitoring database is not configured (any more)
    requests = MetricDefinition.objects.create(
        key="requests", name="Requests", kind=MetricKind.COUNTER, counts_traffic=True
    )
    MetricSource.objects.create(
        metric=requests,
        service=service,
        kind=SourceKind.SQL,
        database="monitoring",
        query="SELECT now() AS at, 1 AS value",
    )
    plan = PlanFactory(slug="sql-down", stages=[("canary", 5, timedelta(0), False)])
    plan.stages.update(min_requests=100)
    release = make_release(service=service, plan=plan, environment=production)
    transitions.start(release, actor=SYSTEM)
    push(release, requests, [500], end=START + timedelta(minutes=1), count=None)
    clock.shift(timedelta(minutes=2))

    assert metric_blockers(release) == [
        "Stage canary needs 100 requests, but the traffic metric's source could not answer: "
        "No read-only database named 'monitoring' is configured."
    ]

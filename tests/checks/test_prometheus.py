"""The Prometheus provider against a real Prometheus (Debian's `prometheus`), and a fake one.

The real server scrapes a tiny exporter this test serves on 127.0.0.1, so the provider reads
numbers that went through Prometheus's own storage and query engine. Timeouts and malformed
answers come from a local HTTP server that misbehaves on purpose.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.utils import timezone

from apps.checks.choices import Level, SourceKind, Verdict
from apps.checks.measuring import evaluate_one
from apps.checks.models import CheckResult, MetricSource
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion
from tests.conftest import need_service
from tests.factories import PlanFactory, ServiceFactory, make_release

QUERY = 'test_error_ratio{service="{service}", version="{version}", variant="{variant}"}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Exporter:
    """Serves /metrics in the Prometheus text format; tests set the values."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                lines = ["# TYPE test_error_ratio gauge"]
                lines += [
                    f"test_error_ratio{{{labels}}} {value}"
                    for labels, value in exporter.values.items()
                ]
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    running = Exporter()
    yield running
    running.close()


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        need_service("the `prometheus` binary is missing (apt-get install prometheus)")
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: test\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter.port}']\n"
    )
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    "Prometheus did not start:\n" + Path(log.name).read_text(errors="replace")
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wait_for_value(url: str, query: str, expected: float) -> None:
    """Poll Prometheus until the query answers the expected value (scraped every second)."""
    deadline = time.monotonic() + 20
    params = urllib.parse.urlencode({"query": query})
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=2) as answer:
            result = json.load(answer)["data"]["result"]
        if result and float(result[0]["value"][1]) == expected:
            return
        time.sleep(0.3)
    pytest.fail(f"Prometheus never answered {expected} for {query}")


@pytest.fixture
def watched(db, production):
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    plan = PlanFactory(slug="prom", stages=[("canary", 5, timedelta(0), False)])
    release = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    transitions.start(release, actor=Actor.system("tests"))
    return release


def source(release, metric, base_url: str, query: str = QUERY, timeout: float = 3):
    return MetricSource.objects.create(
        metric=metric,
        service=release.service,
        kind=SourceKind.PROMETHEUS,
        base_url=base_url,
        query=query,
        timeout_seconds=timeout,
    )


def labels(variant: str = "treatment", version: str = "2.4.0") -> str:
    return f'service="ai-orchestra",version="{version}",variant="{variant}"'


def test_instant_query_through_a_real_prometheus(prometheus, exporter, watched, error_rate):
    exporter.values[labels()] = 0.01
    wait_for_value(prometheus, 'test_error_ratio{variant="treatment",version="2.4.0"}', 0.01)
    rule = criterion(watched.plan, error_rate, warning_threshold=0.02, critical_threshold=0.05)
    where = source(watched, error_rate, prometheus)

    evaluation = evaluate_one(rule, watched, timezone.now(), where)

    assert evaluation.level == Level.OK
    assert evaluation.value == pytest.approx(0.01)
    assert evaluation.samples == 1


def test_breach_read_from_prometheus_rolls_the_release_back(
    prometheus, exporter, watched, error_rate
):
    exporter.values[labels(version="2.4.0")] = 0.09
    wait_for_value(prometheus, 'test_error_ratio{variant="treatment",version="2.4.0"}', 0.09)
    criterion(watched.plan, error_rate, on_critical="rollback")
    source(watched, error_rate, prometheus)

    run_checks()

    watched.refresh_from_db()
    assert watched.status == ReleaseStatus.ROLLED_BACK
    assert watched.traffic_percentage == 0
    assert "measured 9 %" in watched.events.get(verb=EventVerb.ROLLED_BACK).reason
    assert CheckResult.objects.get().verdict == Verdict.FAIL
    exporter.values[labels(version="2.4.0")] = 0.01


def test_relative_query_fills_the_variant_placeholder(prometheus, exporter, watched, error_rate):
    exporter.values[labels("treatment", "2.4.1")] = 0.04
    exporter.values[labels("control", "2.4.1")] = 0.01
    wait_for_value(prometheus, 'test_error_ratio{variant="control",version="2.4.1"}', 0.01)
    watched.version = "2.4.1"
    rule = criterion(
        watched.plan, error_rate, reference="control", tolerance="absolute", critical_threshold=0.02
    )

    evaluation = evaluate_one(
        rule, watched, timezone.now(), source(watched, error_rate, prometheus)
    )

    assert evaluation.level == Level.CRITICAL
    assert (evaluation.value, evaluation.reference_value) == (
        pytest.approx(0.04),
        pytest.approx(0.01),
    )


def test_range_query_over_a_window_prometheus_has_no_history_for_is_a_gap(
    prometheus, exporter, watched, error_rate
):
    exporter.values[labels()] = 0.01
    wait_for_value(prometheus, 'test_error_ratio{variant="treatment",version="2.4.0"}', 0.01)
    # Ten minutes of one-minute intervals: the server has scraped for seconds only, while the
    # stage has run for an hour (a younger stage's time before it began is not a gap).
    stage = watched.current_stage
    stage.entered_at = timezone.now() - timedelta(hours=1)
    stage.save(update_fields=["entered_at"])
    rule = criterion(watched.plan, error_rate, for_window=timedelta(minutes=10))

    evaluation = evaluate_one(
        rule, watched, timezone.now(), source(watched, error_rate, prometheus)
    )

    assert evaluation.level == Level.NO_DATA
    assert "Gap in data" in evaluation.detail


def test_several_series_and_bad_promql_are_errors(prometheus, exporter, watched, error_rate):
    exporter.values[labels("treatment", "x1")] = 0.01
    exporter.values[labels("treatment", "x2")] = 0.02
    wait_for_value(prometheus, 'test_error_ratio{version="x2"}', 0.02)
    rule = criterion(watched.plan, error_rate)
    many = source(watched, error_rate, prometheus, query='test_error_ratio{version=~"x.*"}')

    several = evaluate_one(rule, watched, timezone.now(), many)
    many.query = "sum(test_error_ratio"
    broken = evaluate_one(rule, watched, timezone.now(), many)

    assert several.level == Level.ERROR
    assert "returned 2 series" in several.detail
    assert broken.level == Level.ERROR
    assert broken.detail.startswith("Prometheus answered 400: ")
    assert "parse error" in broken.detail


# --- a misbehaving server ---------------------------------------------------------------------


class Misbehaving:
    """Answers /api/v1/query with whatever the test sets: slow, not JSON, wrong shape."""

    def __init__(self) -> None:
        self.body = b"{}"
        self.delay = 0.0
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                time.sleep(server.delay)
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def misbehaving() -> Iterator[Misbehaving]:
    server = Misbehaving()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"<html>proxy error</html>", 200, "Malformed answer from Prometheus: not JSON."),
        (b'{"status": "success"}', 200, "Malformed answer from Prometheus: no data"),
        (
            b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}',
            200,
            "Malformed answer from Prometheus: KeyError('value')",
        ),
        (
            b'{"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}',
            200,
            "Prometheus answered a 'string'",
        ),
        (b'{"status": "error", "error": "too many samples"}', 200, "too many samples"),
        (b'{"status": "error", "error": "query timed out"}', 503, "answered 503: query timed out"),
    ],
)
def test_malformed_answers_are_recorded_as_errors(
    misbehaving, watched, error_rate, body, status, message
):
    misbehaving.body, misbehaving.status = body, status
    rule = criterion(watched.plan, error_rate)

    evaluation = evaluate_one(
        rule, watched, timezone.now(), source(watched, error_rate, misbehaving.url)
    )

    assert evaluation.level == Level.ERROR
    assert message in evaluation.detail


def test_a_slow_prometheus_times_out_and_the_tick_goes_on(
    misbehaving, watched, error_rate, latency
):
    misbehaving.delay = 3
    misbehaving.body = b'{"status": "success", "data": {"resultType": "vector", "result": []}}'
    slow = criterion(watched.plan, error_rate)
    source(watched, error_rate, misbehaving.url, timeout=0.5)
    other = criterion(watched.plan, latency, critical_threshold=5)

    started = time.monotonic()
    run_checks()

    assert time.monotonic() - started < 2.5
    results = {r.criterion_id: r for r in CheckResult.objects.all()}
    assert results[slow.pk].level == Level.ERROR
    assert results[slow.pk].detail == "Prometheus did not answer within 0.5s."
    assert results[other.pk].level == Level.NO_DATA  # evaluated all the same

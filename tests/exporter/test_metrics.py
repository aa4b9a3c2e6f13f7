"""/metrics: off unless configured, guarded by a bearer token or an allow-list, and figures that
follow the rows (releases, jobs, check evaluations by provider, deliveries, incidents,
sign-offs waiting, report sends) at a number of queries that does not grow with them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.checks.choices import Level, SourceKind, Verdict
from apps.checks.models import CheckResult, CheckRun, MetricSource
from apps.core.actors import Actor
from apps.incidents.choices import Channel, IncidentStatus, Severity
from apps.incidents.models import Incident, NotificationDelivery
from apps.jobs.models import JobRun, RunOutcome
from apps.outbox.choices import DeliveryStatus
from apps.outbox.models import Message
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release
from apps.reports.choices import Frequency
from apps.reports.models import Report, ReportDelivery
from apps.rollouts import transitions, verdicts
from apps.signoffs.models import SignOffRequest
from apps.signoffs.services import gate_status
from tests.checks.conftest import criterion
from tests.factories import PlanFactory, ServiceFactory, make_release
from tests.signoffs.conftest import add_rule, member

TOKEN = "scrape-me-please-0123456789"


@pytest.fixture
def with_token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    answer = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("text/plain; version=0.0.4")
    values = {}
    for family in text_string_to_metric_families(answer.content.decode()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values: dict, name: str, **labels: str) -> float:
    return values[(name, tuple(sorted(labels.items())))]


def test_off_unless_configured(client, db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 404


def test_the_token_is_required(client, db, with_token):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_the_allow_list(client, db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    refused = client.get("/metrics", REMOTE_ADDR="10.2.0.7")
    assert refused.status_code == 401
    assert b"10.2.0.7 is not in METRICS_ALLOWED_NETWORKS" in refused.content
    assert client.get("/metrics", REMOTE_ADDR="10.1.3.4").status_code == 200
    # Both set: both must hold.
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics", REMOTE_ADDR="10.1.3.4").status_code == 401
    ok = client.get("/metrics", REMOTE_ADDR="10.1.3.4", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200


def populate(n: int, production, error_rate) -> Release:
    """n of each kind of row the figures count; returns a running release."""
    plan = PlanFactory(slug=f"metrics-{n}", stages=[("canary", 5, timedelta(0), False)])
    # The shared source of the metric (no service of its own): every service reads Prometheus.
    MetricSource.objects.get_or_create(
        metric=error_rate,
        service=None,
        defaults={
            "kind": SourceKind.PROMETHEUS,
            "base_url": "http://prometheus.internal:9090",
            "query": "up",
        },
    )
    rule = criterion(plan, error_rate)
    now = timezone.now()
    running = None
    for i in range(n):
        service = ServiceFactory(slug=f"svc-{n}-{i}", name=f"Svc {n}-{i}", default_plan=plan)
        release = make_release(service=service, environment=production, plan=plan)
        transitions.start(release, actor=Actor.system("tests"))
        running = running or release
        run = CheckRun.objects.create(release=release, stage=release.current_stage)
        CheckResult.objects.create(
            run=run,
            release=release,
            criterion=rule,
            label="x",
            at=now,
            level=Level.ERROR,
            verdict=Verdict.INCONCLUSIVE,
        )
        CheckResult.objects.create(
            run=run,
            release=release,
            criterion=rule,
            label="x",
            at=now,
            level=Level.CRITICAL,
            verdict=Verdict.FAIL,
        )
        # Outside the window: not counted.
        CheckResult.objects.create(
            run=run,
            release=release,
            criterion=rule,
            label="x",
            at=now - timedelta(hours=1),
            level=Level.CRITICAL,
            verdict=Verdict.FAIL,
        )
        incident = Incident.objects.create(
            service=service, title=f"down {i}", severity=Severity.SEV2
        )
        NotificationDelivery.objects.create(
            incident=incident,
            channel=Channel.WEBHOOK,
            target="https://hooks.example.com/x",
            idempotency_key=f"hook-{n}-{i}",
            status=DeliveryStatus.FAILED,
            created_at=now - timedelta(minutes=10),
        )
        NotificationDelivery.objects.create(
            incident=incident,
            channel=Channel.EMAIL,
            target="sam@example.com",
            idempotency_key=f"mail-{n}-{i}",
            status=DeliveryStatus.SENT,
        )
        Message.objects.create(kind="test", key=f"msg-{n}-{i}", to="a@example.com")
        report = Report.objects.create(
            kind=Frequency.WEEKLY,
            service=service,
            period_start=now - timedelta(days=7 * (i + 1)),
            period_end=now - timedelta(days=7 * i),
            subject="r",
            html="",
            text="",
        )
        ReportDelivery.objects.create(
            report=report,
            address="em@example.com",
            status=DeliveryStatus.SENT,
            sent_at=now - timedelta(minutes=i),
        )
        ReportDelivery.objects.create(
            report=report, address="pm@example.com", status=DeliveryStatus.FAILED
        )
    return running


@pytest.fixture
def metric(db):
    from apps.checks.choices import BadDirection, MetricKind
    from apps.checks.models import MetricDefinition

    return MetricDefinition.objects.create(
        key="error_rate",
        name="Error rate",
        kind=MetricKind.RATIO,
        bad_direction=BadDirection.HIGHER,
    )


def test_figures_follow_the_rows(client, with_token, production, metric):
    populate(3, production, metric)
    now = timezone.now()
    JobRun.objects.create(
        job="rollouts.checks",
        started_at=now - timedelta(seconds=95),
        finished_at=now - timedelta(seconds=90),
        outcome=RunOutcome.OK,
        items_failed=2,
    )
    for release in Release.objects.active():
        verdicts.refresh_one(release.pk)  # the incidents were written without their lifecycle
    values = scrape(client)

    assert value(values, "rolloutdesk_releases", status=ReleaseStatus.IN_PROGRESS) == 3
    assert value(values, "rolloutdesk_releases", status=ReleaseStatus.COMPLETED) == 0
    # Their gates as the kept verdicts say: each is held by its service's open SEV2 incident.
    assert value(values, "rolloutdesk_release_gates", state="red") == 3
    assert value(values, "rolloutdesk_release_gates", state="green") == 0
    assert value(values, "rolloutdesk_release_gates", state="unknown") == 0
    assert value(values, "rolloutdesk_release_gates_held_by", kind="incident") == 3
    assert value(values, "rolloutdesk_release_gates_held_by", kind="no_go") == 0
    # The tick: its last run took 5 s and finished 90 s ago; the rollouts-tick entry runs every
    # minute, so it is not stale yet (two intervals).
    assert value(values, "rolloutdesk_job_duration_seconds", task="rollouts.checks") == 5
    assert 90 <= value(values, "rolloutdesk_job_lag_seconds", task="rollouts.checks") < 100
    assert value(values, "rolloutdesk_job_items_failed", task="rollouts.checks") == 2
    assert value(values, "rolloutdesk_job_interval_seconds", task="rollouts.checks") == 60
    assert value(values, "rolloutdesk_job_stale", task="rollouts.checks") == 0
    # Evaluations in the window, by the provider the service's source names.
    assert (
        value(values, "rolloutdesk_check_evaluations", provider="prometheus", verdict="fail") == 3
    )
    assert (
        value(
            values, "rolloutdesk_check_evaluations", provider="prometheus", verdict="inconclusive"
        )
        == 3
    )
    assert value(values, "rolloutdesk_check_evaluations", provider="push", verdict="fail") == 0
    assert value(values, "rolloutdesk_check_source_failures", provider="prometheus") == 3
    # Deliveries by outbox table and channel: the sent ones are not counted.
    hooks = {"table": "incidents.notificationdelivery", "channel": "webhook"}
    assert value(values, "rolloutdesk_deliveries", **hooks, status="failed") == 3
    assert value(values, "rolloutdesk_deliveries", **hooks, status="pending") == 0
    assert value(values, "rolloutdesk_deliveries_oldest_unsent_seconds", **hooks) >= 600
    mails = {"table": "outbox.message", "channel": "email"}
    assert value(values, "rolloutdesk_deliveries", **mails, status="pending") == 3
    assert (
        value(values, "rolloutdesk_incidents_open", severity="sev2", status=IncidentStatus.OPEN)
        == 3
    )
    assert (
        value(values, "rolloutdesk_incidents_open", severity="sev1", status=IncidentStatus.OPEN)
        == 0
    )


def test_a_stopped_tick_is_stale(client, with_token, db):
    now = timezone.now()
    JobRun.objects.create(
        job="rollouts.checks",
        started_at=now - timedelta(minutes=10),
        finished_at=now - timedelta(minutes=10),
        outcome=RunOutcome.OK,
    )
    values = scrape(client)
    assert value(values, "rolloutdesk_job_stale", task="rollouts.checks") == 1
    assert value(values, "rolloutdesk_job_lag_seconds", task="rollouts.checks") >= 600


def test_signoffs_waiting_and_their_age(client, with_token, service, production):
    managers = Group.objects.create(name="Engineering managers")
    plan = PlanFactory(slug="signed", stages=[("canary", 5, timedelta(0), False)])
    add_rule(plan, "canary", [managers])
    erin, eric = member("erin", managers), member("eric", managers)
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=Actor.system("tests"))
    key = gate_status(release).gate.key
    asked = timezone.now() - timedelta(hours=3)
    for person in (erin, eric):
        SignOffRequest.objects.create(
            release=release, gate_key=key, user=person, requested_at=asked, requested_by="t"
        )
    # An old request for an earlier gate attempt no longer waits.
    SignOffRequest.objects.create(
        release=release,
        gate_key="old",
        user=erin,
        requested_at=asked - timedelta(days=3),
        requested_by="t",
    )
    values = scrape(client)
    assert value(values, "rolloutdesk_signoffs_waiting") == 2
    assert 3 * 3600 <= value(values, "rolloutdesk_signoffs_oldest_waiting_seconds") < 3 * 3700


def test_report_sends(client, with_token, production, metric):
    values = scrape(client)
    assert value(values, "rolloutdesk_report_deliveries", status="sent") == 0
    assert ("rolloutdesk_report_last_sent_timestamp_seconds", ()) not in values
    populate(2, production, metric)
    values = scrape(client)
    assert value(values, "rolloutdesk_report_deliveries", status="sent") == 2
    assert value(values, "rolloutdesk_report_deliveries", status="failed") == 2
    last = value(values, "rolloutdesk_report_last_sent_timestamp_seconds")
    assert abs(last - timezone.now().timestamp()) < 60


def test_the_number_of_queries_does_not_grow_with_the_rows(client, with_token, production, metric):
    """Running releases, results, incidents, deliveries and reports are all counted in SQL
    (the gates from their kept verdicts, never evaluated here)."""
    populate(1, production, metric)
    with CaptureQueriesContext(connection) as few:
        scrape(client)
    populate(6, production, metric)
    with CaptureQueriesContext(connection) as many:
        values = scrape(client)
    assert value(values, "rolloutdesk_releases", status=ReleaseStatus.IN_PROGRESS) == 7
    assert (
        value(values, "rolloutdesk_check_evaluations", provider="prometheus", verdict="fail") == 7
    )
    assert len(many.captured_queries) == len(few.captured_queries)


def test_a_bad_allow_list_stops_the_start_naming_it() -> None:
    env = {**os.environ, "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,office", "DEBUG": "true"}
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, "DJANGO_SETTINGS_MODULE": "rolloutdesk.settings"},
        capture_output=True,
        text=True,
    )
    assert started.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS: 'office' is not a network" in started.stderr

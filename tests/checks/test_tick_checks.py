"""The tick evaluates every in-progress release's criteria, records them and acts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from apps.checks.choices import CriticalAction, Level, RunTrigger, SourceKind, Verdict
from apps.checks.models import CheckNotification, CheckResult, CheckRun, MetricSource
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from apps.rollouts.tasks import tick
from tests.checks.conftest import criterion, push
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)
SYSTEM = Actor.system("tests")


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def plan():
    return PlanFactory(
        slug="watched",
        stages=[("canary", 5, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )


@pytest.fixture
def running(clock, plan, production):
    service = ServiceFactory(
        name="AI Orchestra", slug="ai-orchestra", notification_emails="oncall@example.com"
    )
    release = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    transitions.start(release, actor=SYSTEM)
    return release


def test_sustained_critical_breach_rolls_back_naming_criterion_value_and_threshold(
    running, plan, error_rate
):
    rule = criterion(
        plan,
        error_rate,
        warning_threshold=0.02,
        critical_threshold=0.05,
        for_window=timedelta(minutes=5),
        on_critical=CriticalAction.ROLLBACK,
    )
    push(running, error_rate, [0.07, 0.08, 0.07, 0.09, 0.07], end=NOW)

    tick()

    running.refresh_from_db()
    assert running.status == ReleaseStatus.ROLLED_BACK
    assert running.traffic_percentage == 0
    event = running.events.get(verb=EventVerb.ROLLED_BACK)
    assert event.actor_name == "system:metric-checks"
    assert "error_rate > 5 %" in event.reason
    assert "measured 7.6 %" in event.reason
    assert "critical threshold > 5 %" in event.reason
    assert "for 5 min" in event.reason
    result = CheckResult.objects.get(criterion=rule)
    assert (result.verdict, result.level) == (Verdict.FAIL, Level.CRITICAL)
    assert result.value == pytest.approx(0.076)
    assert result.threshold == 0.05
    run = result.run
    assert (run.release, run.trigger, run.verdict) == (running, RunTrigger.TICK, Verdict.FAIL)
    assert run.action.startswith("rollback")


def test_breach_shorter_than_the_window_does_nothing(running, plan, error_rate):
    criterion(plan, error_rate, for_window=timedelta(minutes=5), on_critical="rollback")
    push(running, error_rate, [0.01, 0.01, 0.09, 0.09, 0.09], end=NOW)

    tick()

    running.refresh_from_db()
    assert running.status == ReleaseStatus.IN_PROGRESS
    assert CheckResult.objects.get().verdict == Verdict.PASS


def test_critical_pause_action_pauses(running, plan, latency):
    criterion(plan, latency, critical_threshold=5, on_critical=CriticalAction.PAUSE)
    push(running, latency, [6.5], end=NOW, count=None)

    tick()

    running.refresh_from_db()
    assert running.status == ReleaseStatus.PAUSED
    assert "p95_latency_seconds > 5 s" in running.events.get(verb=EventVerb.PAUSED).reason


def test_consecutive_needs_breaches_in_successive_ticks(running, plan, latency, clock):
    criterion(plan, latency, critical_threshold=5, consecutive=2, on_critical="pause")
    push(running, latency, [6, 6, 6], end=NOW + timedelta(minutes=2), count=None)

    tick()
    running.refresh_from_db()
    assert running.status == ReleaseStatus.IN_PROGRESS
    clock.shift(timedelta(minutes=1))
    tick()

    running.refresh_from_db()
    assert running.status == ReleaseStatus.PAUSED
    assert list(CheckResult.objects.order_by("at").values_list("verdict", flat=True)) == [
        Verdict.PASS,
        Verdict.FAIL,
    ]


def test_warning_emails_the_service_once_per_episode(
    running, plan, error_rate, clock, django_capture_on_commit_callbacks
):
    criterion(plan, error_rate, warning_threshold=0.02, critical_threshold=0.05)
    push(running, error_rate, [0.03, 0.03, 0.01, 0.03], end=NOW + timedelta(minutes=3))

    with django_capture_on_commit_callbacks(execute=True):
        tick()  # 0.03 at 11:59: warning
    clock.shift(timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        tick()  # still warning: same episode, no second email
    assert len(mail.outbox) == 1
    clock.shift(timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        tick()  # 0.01: passes, the episode ends
    clock.shift(timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        tick()  # warning again: a new episode, a new email

    running.refresh_from_db()
    assert running.status == ReleaseStatus.IN_PROGRESS
    verdicts = list(CheckResult.objects.order_by("at").values_list("verdict", flat=True))
    assert verdicts == [Verdict.WARN, Verdict.WARN, Verdict.PASS, Verdict.WARN]
    assert len(mail.outbox) == 2
    message = mail.outbox[0]
    assert message.to == ["oncall@example.com"]
    assert message.subject == (
        "[AI Orchestra] 2.4.0 → Production: metric check warn — error_rate > 2 % (warning)"
    )
    assert "Measured: 3 %" in message.body
    assert "threshold 2 %" in message.body
    html = message.alternatives[0][0]
    assert "error_rate &gt; 2 % (warning)" in html and "3 %" in html
    assert "> 5 %" not in message.subject + message.body, "the critical rule did not fire"
    assert CheckNotification.objects.filter(sent_at__isnull=False).count() == 2


def test_dry_run_breach_records_fail_and_takes_no_action(
    running, plan, error_rate, django_capture_on_commit_callbacks
):
    rule = criterion(plan, error_rate, on_critical="rollback", dry_run=True)
    push(running, error_rate, [0.5], end=NOW)

    with django_capture_on_commit_callbacks(execute=True):
        tick()

    running.refresh_from_db()
    assert running.status == ReleaseStatus.IN_PROGRESS
    result = CheckResult.objects.get(criterion=rule)
    assert (result.verdict, result.dry_run) == (Verdict.FAIL, True)
    assert result.run.action == ""
    assert not mail.outbox
    assert not CheckNotification.objects.exists()


def test_no_data_is_inconclusive_and_warns_after_the_limit(
    running, plan, error_rate, clock, django_capture_on_commit_callbacks
):
    criterion(plan, error_rate, inconclusive_limit=3)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            tick()
        clock.shift(timedelta(minutes=1))

    verdicts = list(CheckResult.objects.order_by("at").values_list("verdict", flat=True))
    assert verdicts == [Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE, Verdict.WARN]
    assert "Inconclusive 3 evaluations in a row" in CheckResult.objects.order_by("at").last().detail
    assert len(mail.outbox) == 1


def test_a_dead_source_records_an_error_and_the_other_criteria_still_run(
    running, plan, error_rate, latency
):
    MetricSource.objects.create(
        metric=latency,
        service=running.service,
        kind=SourceKind.PROMETHEUS,
        base_url="http://127.0.0.1:9",  # discard port: nothing listens
        query='p95{service="{service}"}',
        timeout_seconds=1,
    )
    criterion(plan, latency, critical_threshold=5)
    errors = criterion(plan, error_rate, on_critical="rollback")
    push(running, error_rate, [0.5], end=NOW)

    tick()

    results = {r.label: r for r in CheckResult.objects.all()}
    dead = results["p95_latency_seconds > 5 s"]
    assert (dead.level, dead.verdict) == (Level.ERROR, Verdict.INCONCLUSIVE)
    assert "unreachable" in dead.detail
    assert results[errors.label].verdict == Verdict.FAIL
    running.refresh_from_db()
    assert running.status == ReleaseStatus.ROLLED_BACK


def test_stage_criteria_watch_only_their_stage(running, plan, latency):
    full = plan.stages.get(name="full")
    criterion(None, latency, stage_template=full, critical_threshold=5, on_critical="pause")
    push(running, latency, [9, 9], end=NOW + timedelta(minutes=1), count=None)

    run_checks()
    assert not CheckResult.objects.exists()  # canary is not watched
    transitions.advance(running, actor=SYSTEM)
    run_checks(now=NOW + timedelta(seconds=1))  # a later slot? same minute: claimed already
    assert not CheckResult.objects.exists()
    run_checks(now=NOW + timedelta(minutes=1))

    running.refresh_from_db()
    assert running.status == ReleaseStatus.PAUSED


def test_two_ticks_in_the_same_minute_evaluate_once(running, plan, error_rate):
    criterion(plan, error_rate)
    push(running, error_rate, [0.01], end=NOW)

    first = run_checks()
    second = run_checks(now=NOW + timedelta(seconds=20))

    assert (first.releases, second.releases) == (1, 0)
    assert CheckRun.objects.count() == 1


def test_only_in_progress_releases_are_checked(running, plan, error_rate, production):
    criterion(plan, error_rate)
    planned = make_release(service=running.service, plan=plan, environment=production)
    # Paused in staging: production holds one running release of the service at a time.
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    paused = make_release(service=running.service, plan=plan, environment=staging)
    transitions.start(paused, actor=SYSTEM)
    transitions.pause(paused, actor=SYSTEM)

    report = run_checks()

    assert report.releases == 1
    assert list(CheckRun.objects.values_list("release", flat=True)) == [running.pk]
    assert planned.pk != running.pk


def test_auto_advance_still_moves_a_green_release_after_the_checks(clock, production, error_rate):
    plan = PlanFactory(
        slug="auto",
        stages=[("canary", 5, timedelta(0), True), ("full", 100, timedelta(0), False)],
    )
    criterion(plan, error_rate)
    release = make_release(plan=plan, environment=production)
    transitions.start(release, actor=SYSTEM)
    push(release, error_rate, [0.01], end=NOW)

    result = tick()

    release.refresh_from_db()
    assert result["advanced"] == 1
    assert release.current_stage.name == "full"
    assert CheckResult.objects.get().verdict == Verdict.PASS

"""Two ticks at once (two workers, or a slow tick overlapping the next) act once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from apps.checks.choices import Verdict
from apps.checks.models import CheckNotification, CheckResult, CheckRun
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion, push
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release

pytestmark = pytest.mark.django_db(transaction=True)


def minute_start() -> datetime:
    return timezone.now().replace(second=0, microsecond=0)


@pytest.fixture
def scene(postgres, production, error_rate, latency):
    """A release that must be rolled back and one that must be warned about, among others."""
    service = ServiceFactory(
        name="AI Orchestra", slug="ai-orchestra", notification_emails="oncall@example.com"
    )
    plan = PlanFactory(slug="watched", stages=[("canary", 5, timedelta(0), False)])
    criterion(plan, error_rate, on_critical="rollback")
    criterion(plan, latency, warning_threshold=3, critical_threshold=5, on_critical="notify")
    # Each in a region of its own: one release of a service runs in an environment at a time.
    regions = [production] + [
        EnvironmentFactory(name=f"Region {n}", slug=f"region-{n}") for n in range(1, 6)
    ]
    releases = [
        make_release(service=service, environment=regions[n], plan=plan, version=f"3.{n}")
        for n in range(6)
    ]
    for release in releases:
        transitions.start(release, actor=Actor.system("tests"))
    base = minute_start()
    for release in releases:
        push(release, error_rate, [0.01] * 3, end=base + timedelta(minutes=1))
        push(release, latency, [1.0] * 3, end=base + timedelta(minutes=1), count=None)
    breaching, warned = releases[0], releases[1]
    push(breaching, error_rate, [0.2], end=base + timedelta(minutes=2))
    push(warned, latency, [4.0], end=base + timedelta(minutes=2), count=None)
    # One quiet tick first, so that every criterion has a history (as in production).
    run_checks(now=base + timedelta(seconds=59))
    return base, breaching, warned, releases


def run_two(first: datetime, second: datetime) -> list:
    barrier = threading.Barrier(2)

    def tick(now: datetime):
        try:
            barrier.wait(timeout=10)
            return run_checks(now=now)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(tick, [first, second]))


def assert_acted_once(breaching, warned) -> None:
    breaching.refresh_from_db()
    warned.refresh_from_db()
    assert breaching.status == ReleaseStatus.ROLLED_BACK
    assert breaching.events.filter(verb=EventVerb.ROLLED_BACK).count() == 1
    assert warned.status == ReleaseStatus.IN_PROGRESS
    assert CheckNotification.objects.filter(release=warned).count() == 1
    metric_mails = [m for m in mail.outbox if "metric check" in m.subject]
    assert len(metric_mails) == 1
    assert "p95_latency_seconds" in metric_mails[0].subject
    rollback_mails = [m for m in mail.outbox if "rolled back" in m.subject]
    assert len(rollback_mails) == 1


def test_two_ticks_in_the_same_minute_roll_back_once_and_notify_once(scene):
    base, breaching, warned, releases = scene
    now = base + timedelta(minutes=1, seconds=59)

    reports = run_two(now, now + timedelta(microseconds=1))

    assert sorted(r.releases for r in reports) == [0, 6] or sum(r.releases for r in reports) == 6
    assert CheckRun.objects.filter(slot__isnull=False).count() == 6 + 6
    assert_acted_once(breaching, warned)


def test_overlapping_ticks_of_two_minutes_still_act_once(scene):
    base, breaching, warned, releases = scene
    # A slow tick of one minute and the next one's, running at the same time.
    reports = run_two(
        base + timedelta(minutes=1, seconds=59), base + timedelta(minutes=2, seconds=1)
    )

    assert sum(len(r.rolled_back) for r in reports) == 1
    assert sum(r.notified for r in reports) == 1
    assert_acted_once(breaching, warned)
    assert CheckResult.objects.filter(release=warned, verdict=Verdict.WARN).exists()

"""One breach episode of one release is one incident, however many criteria it trips."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection

from apps.checks.choices import CriticalAction, MetricKind
from apps.checks.models import MetricDefinition
from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import Channel, IncidentSource, IncidentStatus, IncidentVerb
from apps.incidents.models import Incident, NotificationDelivery
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion, push
from tests.factories import PlanFactory, make_release

NOW = datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)
MIN = timedelta(minutes=1)
SYSTEM = Actor.system("tests")


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def plan(db):
    return PlanFactory(
        slug="watched",
        stages=[("canary", 5, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )


@pytest.fixture
def latency(db) -> MetricDefinition:
    return MetricDefinition.objects.create(
        key="p95_latency_seconds", name="p95 latency", unit="s", kind=MetricKind.GAUGE
    )


def started(service, production, plan, version: str):
    release = make_release(service=service, environment=production, plan=plan, version=version)
    transitions.start(release, actor=SYSTEM)
    return release


def breach_incidents() -> list[Incident]:
    return list(Incident.objects.filter(source=IncidentSource.BREACH).order_by("pk"))


def timeline(incident: Incident) -> list[tuple[str, str]]:
    """(verb, criterion label) of each opened / triggered-again entry, oldest first."""
    return [
        (e.verb, e.data.get("criterion", {}).get("label", ""))
        for e in incident.events.order_by("id")
        if e.verb in (IncidentVerb.OPENED, IncidentVerb.TRIGGERED_AGAIN)
    ]


def l1_pages() -> Counter:
    """Email pages of the first level, per (incident, person)."""
    return Counter(
        NotificationDelivery.objects.filter(channel=Channel.EMAIL, level=1).values_list(
            "incident_id", "contact__name"
        )
    )


@pytest.mark.django_db
def test_two_criteria_breaching_in_one_tick_make_one_incident_one_page_one_rollback(
    clock, service, production, plan, error_rate, latency, routing, run
):
    errors = criterion(plan, error_rate, on_critical=CriticalAction.ROLLBACK)
    slow = criterion(plan, latency, critical_threshold=1.0, on_critical=CriticalAction.ROLLBACK)
    release = started(service, production, plan, "2.4.0")
    push(release, error_rate, [0.09], end=NOW)
    push(release, latency, [2.5], end=NOW)
    mail.outbox.clear()

    run(run_checks)

    [incident] = breach_incidents()
    assert incident.release == release
    assert incident.fingerprint == f"breach:release-{release.pk}"
    assert timeline(incident) == [
        (IncidentVerb.OPENED, errors.label),
        (IncidentVerb.TRIGGERED_AGAIN, slow.label),
    ]
    # The entries' reasons, as people read them, name each criterion and its measurement.
    opened = incident.events.get(verb=IncidentVerb.OPENED)
    joined = incident.events.get(verb=IncidentVerb.TRIGGERED_AGAIN)
    assert "measured 9 %" in opened.reason and slow.label in joined.reason
    # The first level (Ada, on call) is paged once, by one email, for the one incident.
    assert l1_pages() == Counter({(incident.pk, "Ada"): 1})
    assert [m.to for m in mail.outbox if "[SEV2]" in m.subject] == [["ada@example.com"]]
    # And the release is rolled back once, naming both criteria.
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK
    [rolled_back] = release.events.filter(verb=EventVerb.ROLLED_BACK)
    assert errors.label in rolled_back.reason and slow.label in rolled_back.reason


@pytest.mark.django_db
def test_repeats_of_either_criterion_join_the_open_incident_once_per_episode(
    clock, service, production, plan, error_rate, latency, routing, run
):
    # "notify" keeps the release running, so the next ticks see the same breaches again.
    errors = criterion(plan, error_rate, on_critical=CriticalAction.NOTIFY)
    slow = criterion(plan, latency, critical_threshold=1.0, on_critical=CriticalAction.NOTIFY)
    release = started(service, production, plan, "2.4.0")
    # Both breach for two ticks (one episode each), then errors recover and breach again.
    error_values = [0.09, 0.09, 0.01, 0.09]
    for offset, value in enumerate(error_values):
        now = NOW + offset * MIN
        clock.move_to(now)
        push(release, error_rate, [value], end=now)
        push(release, latency, [2.5], end=now)
        run(run_checks)

    [incident] = breach_incidents()
    assert timeline(incident) == [
        (IncidentVerb.OPENED, errors.label),
        (IncidentVerb.TRIGGERED_AGAIN, slow.label),
        (IncidentVerb.TRIGGERED_AGAIN, errors.label),  # the new episode at NOW + 3 min
    ]
    assert incident.trigger_count == 3
    assert l1_pages() == Counter({(incident.pk, "Ada"): 1})


@pytest.mark.django_db
def test_after_the_incident_is_resolved_the_fixed_release_opens_a_new_one(
    clock, service, production, plan, error_rate, latency, routing, rita_actor, run
):
    criterion(plan, error_rate, on_critical=CriticalAction.ROLLBACK)
    criterion(plan, latency, critical_threshold=1.0, on_critical=CriticalAction.ROLLBACK)
    bad = started(service, production, plan, "2.4.0")
    push(bad, error_rate, [0.09], end=NOW)
    push(bad, latency, [2.5], end=NOW)
    run(run_checks)
    [first] = breach_incidents()
    lifecycle.resolve(first, actor=rita_actor, reason="2.4.0 rolled back; fix in 2.4.1.")

    clock.move_to(NOW + 10 * MIN)
    fixed = started(service, production, plan, "2.4.1")
    push(fixed, error_rate, [0.09], end=NOW + 10 * MIN)
    run(run_checks)

    first_again, second = breach_incidents()
    assert first_again.pk == first.pk and first_again.status == IncidentStatus.RESOLVED
    assert second.release == fixed and second.status == IncidentStatus.OPEN
    assert [verb for verb, _ in timeline(first_again)] == [
        IncidentVerb.OPENED,
        IncidentVerb.TRIGGERED_AGAIN,
    ]
    assert l1_pages() == Counter({(first.pk, "Ada"): 1, (second.pk, "Ada"): 1})


@pytest.mark.django_db(transaction=True)
def test_two_ticks_at_once_with_two_criteria_each_make_one_incident(
    postgres, service, production, routing
):
    release = make_release(service=service, environment=production, version="2.4.0")
    criteria = {7: "error_rate > 5 %", 8: "p95 latency > 1 s"}

    def breach(criterion_id: int) -> tuple[Incident, bool]:
        return lifecycle.open_or_update_for_breach(
            release,
            criterion_id=criterion_id,
            criterion_label=criteria[criterion_id],
            detail=f"Metric check failed: {criteria[criterion_id]}.",
            episode=-123,
        )

    barrier = threading.Barrier(2)

    def tick(order: list[int]) -> list[bool]:
        # The two ticks see the criteria in opposite orders: every interleaving of "open",
        # "join" and "the same occurrence again" gets its chance.
        try:
            barrier.wait(timeout=10)
            return [breach(criterion_id)[1] for criterion_id in order]
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(tick, [[7, 8], [8, 7]]))

    assert sorted(opened for run in outcomes for opened in run) == [False, False, False, True]
    [incident] = Incident.objects.all()
    entries = timeline(incident)
    assert [verb for verb, _ in entries] == [IncidentVerb.OPENED, IncidentVerb.TRIGGERED_AGAIN]
    assert {label for _, label in entries} == set(criteria.values())
    assert l1_pages() == Counter({(incident.pk, "Ada"): 1})

"""The escalation timeline under frozen time: who is paged when, and what stops it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.actors import Actor
from apps.incidents import escalation, lifecycle
from apps.incidents.choices import (
    Channel,
    DeliveryStatus,
    EscalateWhile,
    IncidentVerb,
    Severity,
)
from apps.incidents.models import IncidentRouting, NotificationDelivery
from tests.incidents.conftest import make_policy

pytestmark = pytest.mark.django_db

# A Tuesday: Ada holds the weekly rotation (her turn began Monday 09:00 Berlin).
T0 = datetime.fromisoformat("2026-03-10 10:00:00+00:00")
MIN = timedelta(minutes=1)


def paged_names() -> list[str]:
    return [
        d.contact.name
        for d in NotificationDelivery.objects.filter(channel=Channel.EMAIL)
        .select_related("contact")
        .order_by("id")
    ]


def escalations(incident) -> list[tuple[int, int, list[str]]]:
    """(level, minutes after opening, paged) for each escalation in the timeline."""
    return [
        (
            e.data["level"],
            int((e.created_at - incident.opened_at).total_seconds() // 60),
            e.data["paged"],
        )
        for e in incident.events.filter(verb=IncidentVerb.ESCALATED).order_by("id")
    ]


def open_sev(service, severity, rita_actor, run):
    return run(
        lifecycle.open_incident,
        service=service,
        title="Checkout answers 500",
        severity=severity,
        actor=rita_actor,
    )


def test_levels_at_0_15_30_and_the_critical_only_level_skipped_for_sev3(
    service, routing, rita_actor, run
):
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev(service, Severity.SEV3, rita_actor, run)
        # L1 is paged at once, without waiting for the tick: the rotation's person on call.
        assert paged_names() == ["Ada"]

        clock.move_to(T0 + 15 * MIN - timedelta(seconds=1))
        run(escalation.escalate_due)
        assert paged_names() == ["Ada"]

        clock.move_to(T0 + 15 * MIN)
        run(escalation.escalate_due)
        assert paged_names() == ["Ada", "Pia", "Sam"]

        clock.move_to(T0 + 30 * MIN)
        run(escalation.escalate_due)
        run(escalation.escalate_due)  # the next minute's tick finds nothing new
        assert paged_names() == ["Ada", "Pia", "Sam", "Emma", "Xavier"]

        clock.move_to(T0 + 120 * MIN)
        run(escalation.escalate_due)

    # L4 (CTO, SEV1 only) was due at 45 min: a SEV3 never reaches it.
    assert paged_names() == ["Ada", "Pia", "Sam", "Emma", "Xavier"]
    assert escalations(incident) == [
        (1, 0, ["Ada"]),
        (2, 15, ["Pia", "Sam"]),
        (3, 30, ["Emma", "Xavier"]),
    ]
    incident.refresh_from_db()
    assert incident.escalation_step == 4  # the skipped level is passed, not pending
    # Each page went out once, by email, in both parts, with the acknowledge and resolve links.
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        f"{name.lower()}@example.com" for name in ["Ada", "Pia", "Sam", "Emma", "Xavier"]
    )
    page = next(m for m in mail.outbox if m.to == ["sam@example.com"])
    assert page.subject.startswith("[SEV3] AI Orchestra: Checkout answers 500")
    assert "L2 page" in page.subject
    html = page.alternatives[0][0]
    for part in (page.body, html):
        assert f"/incidents/{incident.pk}/acknowledge/" in part
        assert f"/incidents/{incident.pk}/resolve/" in part
    assert NotificationDelivery.objects.exclude(status=DeliveryStatus.SENT).count() == 0
    assert incident.events.filter(verb=IncidentVerb.NOTIFIED).count() == 5


def test_a_sev1_reaches_the_critical_only_level(service, routing, rita_actor, run):
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev(service, Severity.SEV1, rita_actor, run)
        for minutes in (15, 30, 45):
            clock.move_to(T0 + minutes * MIN)
            run(escalation.escalate_due)
    assert [level for level, _, _ in escalations(incident)] == [1, 2, 3, 4]
    assert paged_names()[-1] == "Cleo"


def test_acknowledging_stops_escalation_under_the_unacknowledged_rule(
    service, routing, rita_actor, run
):
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev(service, Severity.SEV2, rita_actor, run)
        clock.move_to(T0 + 7 * MIN)
        run(lifecycle.acknowledge, incident, actor=rita_actor)
        for minutes in (15, 30, 45, 90):
            clock.move_to(T0 + minutes * MIN)
            report = run(escalation.escalate_due)
            assert report.escalated == []
    assert paged_names() == ["Ada"]
    incident.refresh_from_db()
    assert incident.time_to_acknowledge == 7 * MIN


def test_acknowledging_does_not_stop_it_under_the_unresolved_rule_but_resolving_does(
    service, people, rotation, rita_actor, run
):
    policy = make_policy(people, rotation, escalate_while=EscalateWhile.UNRESOLVED)
    IncidentRouting.objects.create(service=service, policy=policy)
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev(service, Severity.SEV2, rita_actor, run)
        clock.move_to(T0 + 7 * MIN)
        run(lifecycle.acknowledge, incident, actor=rita_actor)
        clock.move_to(T0 + 15 * MIN)
        run(escalation.escalate_due)
        clock.move_to(T0 + 20 * MIN)
        run(lifecycle.resolve, incident, actor=rita_actor)
        clock.move_to(T0 + 30 * MIN)
        run(escalation.escalate_due)
    assert [level for level, _, _ in escalations(incident)] == [1, 2]
    assert paged_names() == ["Ada", "Pia", "Sam"]
    incident.refresh_from_db()
    assert incident.time_to_resolve == 20 * MIN


def test_the_repeat_rule_starts_over_after_the_last_level(
    service, people, rotation, rita_actor, run
):
    policy = make_policy(people, rotation, repeat_times=1, repeat_after_minutes=30)
    IncidentRouting.objects.create(service=service, policy=policy)
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev(service, Severity.SEV3, rita_actor, run)
        # Last level at 45 min + 30 min: the repeat round starts at 75 min.
        for minutes in (15, 30, 45, 74, 75, 90, 105, 120, 200):
            clock.move_to(T0 + minutes * MIN)
            run(escalation.escalate_due)
    assert [(level, at) for level, at, _ in escalations(incident)] == [
        (1, 0),
        (2, 15),
        (3, 30),
        (1, 75),
        (2, 90),
        (3, 105),
    ]
    rounds = NotificationDelivery.objects.filter(contact=people["ada"]).values_list(
        "round", flat=True
    )
    assert sorted(rounds) == [0, 1]


def test_a_late_tick_pages_every_level_it_missed_in_order(service, routing, rita_actor, run):
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev(service, Severity.SEV3, rita_actor, run)
        clock.move_to(T0 + 31 * MIN)  # the beat was down for half an hour
        report = run(escalation.escalate_due)
    assert report.escalated == [incident.pk]
    assert [level for level, _, _ in escalations(incident)] == [1, 2, 3]
    assert paged_names() == ["Ada", "Pia", "Sam", "Emma", "Xavier"]


def test_reopening_starts_the_escalation_over(service, routing, rita_actor, run):
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev(service, Severity.SEV3, rita_actor, run)
        clock.move_to(T0 + 5 * MIN)
        run(lifecycle.resolve, incident, actor=rita_actor, reason="Flaky probe")
        clock.move_to(T0 + 60 * MIN)
        run(lifecycle.reopen, incident, actor=rita_actor, reason="It is back")
        clock.move_to(T0 + 75 * MIN)
        run(escalation.escalate_due)
    assert [(level, at) for level, at, _ in escalations(incident)] == [(1, 0), (1, 60), (2, 75)]
    assert paged_names() == ["Ada", "Ada", "Pia", "Sam"]
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_at, incident.reopen_count) == ("open", None, 1)


def test_a_level_with_nobody_on_call_is_recorded_as_such(service, routing, rotation, run):
    rotation.members.all().delete()
    with time_machine.travel(T0, tick=False):
        incident = open_sev(service, Severity.SEV3, Actor.system("tests"), run)
    assert escalations(incident) == [(1, 0, [])]
    entry = incident.events.get(verb=IncidentVerb.ESCALATED)
    assert entry.summary() == "escalated to L1: paging nobody (no one on call)"
    assert NotificationDelivery.objects.count() == 0


def test_an_incident_of_a_service_without_a_policy_pages_nobody(service, rita_actor, run):
    incident = open_sev(service, Severity.SEV1, rita_actor, run)
    assert incident.policy is None
    assert run(escalation.escalate_due).examined == 0
    assert mail.outbox == []


def test_a_tick_with_nothing_due_costs_a_fixed_number_of_queries(
    service, routing, rita_actor, run, django_assert_num_queries
):
    with time_machine.travel(T0, tick=False) as clock:
        open_sev(service, Severity.SEV3, rita_actor, run)
        clock.move_to(T0 + 5 * MIN)
        with CaptureQueriesContext(connection) as one:
            escalation.escalate_due()
        for _ in range(10):
            open_sev(service, Severity.SEV3, rita_actor, run)
        with django_assert_num_queries(len(one.captured_queries)):
            report = escalation.escalate_due()
    assert (report.examined, report.escalated) == (11, [])

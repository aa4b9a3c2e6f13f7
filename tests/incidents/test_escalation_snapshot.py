"""An incident keeps the escalation timetable it opened with: editing, deleting or re-timing the
policy's levels mid-incident pages nobody early, twice or never; who is on call stays live."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta

import pytest
import time_machine
from django.apps import apps as global_apps
from django.urls import reverse

from apps.incidents import escalation, lifecycle
from apps.incidents.choices import Channel, IncidentVerb, Severity
from apps.incidents.models import (
    EscalationLevel,
    Incident,
    NotificationDelivery,
    RotationOverride,
)
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db

# A Tuesday: Ada holds the weekly rotation (her turn began Monday 09:00 Berlin).
T0 = datetime.fromisoformat("2026-03-10 10:00:00+00:00")
MIN = timedelta(minutes=1)


def pages() -> list[tuple[int, str, int]]:
    """(level, person, minutes after T0) of every email page, in order."""
    return [
        (d.level, d.contact.name, int((d.created_at - T0).total_seconds() // 60))
        for d in NotificationDelivery.objects.filter(channel=Channel.EMAIL)
        .select_related("contact")
        .order_by("id")
    ]


def open_sev1(service, actor, run) -> Incident:
    return run(
        lifecycle.open_incident,
        service=service,
        title="Checkout answers 500",
        severity=Severity.SEV1,
        actor=actor,
    )


def tick_every_minute(clock, run, until: int, start: int = 1) -> None:
    for minute in range(start, until + 1):
        clock.move_to(T0 + minute * MIN)
        run(escalation.escalate_due)


def test_editing_deleting_and_retiming_levels_mid_incident_changes_nobodys_page(
    service, people, policy, routing, rita_actor, run
):
    levels = {lv.position: lv for lv in policy.levels.all()}
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev1(service, rita_actor, run)
        tick_every_minute(clock, run, until=5)
        # Mid-incident the release manager rewrites the table: L2 deleted, L3 re-timed from
        # 30 to 10 minutes and given to Ben, a new L5 for Pia at 1 minute, L4 moved to 20.
        levels[2].delete()
        levels[3].after_minutes = 10
        levels[3].save()
        levels[3].contacts.set([people["ben"]])
        levels[4].after_minutes = 20
        levels[4].save()
        EscalationLevel.objects.create(policy=policy, position=5, after_minutes=1).contacts.set(
            [people["pia"]]
        )
        tick_every_minute(clock, run, start=6, until=90)

    # Exactly the table at opening: L1 at 0, L2 at 15, L3 at 30, L4 (SEV1) at 45, once each.
    assert pages() == [
        (1, "Ada", 0),
        (2, "Pia", 15),
        (2, "Sam", 15),
        (3, "Emma", 30),
        (3, "Xavier", 30),
        (4, "Cleo", 45),
    ]
    incident.refresh_from_db()
    assert incident.escalation_step == 4


def test_deleting_the_policy_mid_incident_still_pages_the_frozen_levels(
    service, people, policy, routing, rita_actor, run
):
    with time_machine.travel(T0, tick=False) as clock:
        open_sev1(service, rita_actor, run)
        routing.delete()
        policy.delete()  # the incident's policy becomes null; its timetable stays
        clock.move_to(T0 + 15 * MIN)
        run(escalation.escalate_due)
    assert [(level, name) for level, name, _ in pages()] == [(1, "Ada"), (2, "Pia"), (2, "Sam")]


def test_the_rotation_and_contacts_are_read_at_paging_time(
    service, people, rotation, policy, routing, rita_actor, run
):
    policy.repeat_times, policy.repeat_after_minutes = 1, 30
    policy.save()
    with time_machine.travel(T0, tick=False) as clock:
        open_sev1(service, rita_actor, run)
        # Ben covers the rotation from minute 10; Sam leaves before the repeat round.
        RotationOverride.objects.create(
            rotation=rotation,
            contact=people["ben"],
            starts_at=T0 + 10 * MIN,
            ends_at=T0 + 1000 * MIN,
        )
        tick_every_minute(clock, run, until=60)
        people["sam"].active = False
        people["sam"].save()
        tick_every_minute(clock, run, start=61, until=100)
    # The repeat round starts at 45 + 30 = 75 minutes: L1 pages whoever is on call then.
    assert [(level, name) for level, name, at in pages() if at >= 75] == [
        (1, "Ben"),
        (2, "Pia"),
    ]


def test_reopening_freezes_the_policy_as_it_is_then(
    service, people, policy, routing, rita_actor, run
):
    level2 = policy.levels.get(position=2)
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev1(service, rita_actor, run)
        clock.move_to(T0 + 5 * MIN)
        run(lifecycle.resolve, incident, actor=rita_actor)
        level2.after_minutes = 5
        level2.save()
        level2.contacts.set([people["cleo"]])
        clock.move_to(T0 + 60 * MIN)
        run(lifecycle.reopen, incident, actor=rita_actor)
        clock.move_to(T0 + 65 * MIN)
        run(escalation.escalate_due)
    assert pages() == [(1, "Ada", 0), (1, "Ada", 60), (2, "Cleo", 65)]
    incident.refresh_from_db()
    assert [lv.after_minutes for lv in incident.timetable.levels] == [0, 5, 30, 45]


def test_the_incident_page_admin_api_and_list_show_the_frozen_timetable(
    service, people, policy, routing, rita, rita_actor, run, api
):
    with time_machine.travel(T0, tick=False):
        incident = open_sev1(service, rita_actor, run)
        policy.levels.get(position=1).delete()  # live, L2 would now be the first row
        level3 = policy.levels.get(position=3)
        level3.after_minutes = 10
        level3.save()

        page = client_for(rita).get(reverse("incidents:detail", args=[incident.pk]))
        admin = client_for(rita).get(reverse("admin:incidents_incident_change", args=[incident.pk]))
        listing = client_for(rita).get(reverse("pages:incidents"))
    detail = api.get(f"/api/v1/incidents/{incident.pk}/").json()

    for html in (page.content.decode(), admin.content.decode()):
        assert "L1 after 0 min: on call in Platform on-call (every incident)" in html
        assert "L3 after 30 min: Emma, Xavier (every incident)" in html
        assert "L4 after 45 min: Cleo (SEV1 only)" in html
    assert "escalation: <strong>L1</strong>" in listing.content.decode()
    assert [(lv["position"], lv["after_minutes"]) for lv in detail["escalation"]["levels"]] == [
        (1, 0),
        (2, 15),
        (3, 30),
        (4, 45),
    ]
    assert detail["escalation"]["levels"][1]["contacts"] == [
        {"id": people["pia"].pk, "name": "Pia"},
        {"id": people["sam"].pk, "name": "Sam"},
    ]


def test_the_migration_freezes_the_policy_of_incidents_opened_before_it(
    service, people, policy, routing, rita_actor, run
):
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_sev1(service, rita_actor, run)
        # As the incident was before the migration: its policy, no frozen timetable.
        Incident.objects.filter(pk=incident.pk).update(escalation_snapshot=None)
        migration = importlib.import_module("apps.incidents.migrations.0004_escalation_snapshot")
        migration.freeze_existing(global_apps, None)
        incident.refresh_from_db()
        assert incident.timetable.policy_name == policy.name
        policy.levels.get(position=2).delete()  # after the migration, edits no longer count
        clock.move_to(T0 + 15 * MIN)
        run(escalation.escalate_due)
    assert [(level, name) for level, name, _ in pages()] == [(1, "Ada"), (2, "Pia"), (2, "Sam")]
    assert incident.events.filter(verb=IncidentVerb.ESCALATED).count() == 2

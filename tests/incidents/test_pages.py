"""Pages: /oncall/, and the acknowledge / resolve targets of the emailed links (POST only)."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import IncidentStatus, IncidentVerb, Severity
from apps.incidents.models import IncidentRouting, RotationOverride
from tests.factories import ServiceFactory, UserFactory
from tests.incidents.conftest import contact, make_policy, make_rotation

pytestmark = pytest.mark.django_db

# Tuesday 11:00 in Berlin: Ada's week (from Monday 09:00), Ben's next.
T0 = datetime.fromisoformat("2026-03-10 10:00:00+00:00")
SYSTEM = Actor.system("tests")


def signed_in(client, user):
    client.force_login(user)
    return client


def test_oncall_shows_who_is_on_call_now_and_next_and_the_escalation_table(
    client, victor, service, other_service, routing, django_assert_num_queries
):
    with time_machine.travel(T0, tick=False):
        lifecycle.open_incident(
            service=service, title="Checkout down", severity=Severity.SEV1, actor=SYSTEM
        )
        page = signed_in(client, victor).get("/oncall/")
        assert page.status_code == 200
        html = page.content.decode()
        assert "Platform on-call now" in html
        assert "<strong>Ada</strong>" in html and "+49 30 1111" in html
        assert "Ben from Mon 2026-03-16 09:00 CET" in html
        for row in ("L1", "L2", "L3", "L4"):
            assert f"<td>{row}</td>" in html
        assert "<td>45 min</td>" in html and "SEV1 only" in html
        assert "Sam (Senior engineer)" in html and "Cleo (CTO)" in html
        assert "SEV1 Checkout down" in html
        # Billing: no policy of its own, and no rule routes its incidents either.
        assert "No escalation policy of its own: its incidents that no rule matches" in html

        with CaptureQueriesContext(connection) as few:
            client.get("/oncall/")
        for n in range(3):
            more = ServiceFactory(name=f"Service {n}", slug=f"svc-{n}")
            people = {k: contact(f"{k}{n}") for k in ("ada", "ben", "sam", "pia", "emma")}
            people |= {"xavier": contact(f"x{n}"), "cleo": contact(f"c{n}")}
            rotation = make_rotation(f"Rota {n}", [people["ada"], people["ben"]])
            RotationOverride.objects.create(
                rotation=rotation, contact=people["sam"], starts_at=T0, ends_at=T0.replace(day=20)
            )
            policy = make_policy(people, rotation, repeat_times=n, name=f"Policy {n}")
            IncidentRouting.objects.create(service=more, policy=policy)
            lifecycle.open_incident(service=more, title="Down", actor=SYSTEM)
        with django_assert_num_queries(len(few.captured_queries)):
            crowded = client.get("/oncall/")
        assert crowded.status_code == 200
        assert crowded.content.decode().count("(override)") == 3


def test_oncall_needs_a_signed_in_person(client, service):
    response = client.get("/oncall/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/oncall/")


def test_the_emailed_acknowledge_link_asks_first_and_acts_only_on_post(
    client, alice, service, routing, run
):
    incident = run(
        lifecycle.open_incident,
        service=service,
        title="Checkout down",
        severity=Severity.SEV2,
        actor=SYSTEM,
    )
    [page] = mail.outbox
    link = f"/incidents/{incident.pk}/acknowledge/"
    assert link in page.body
    signed_in(client, alice)

    # A GET (a person, or a mail scanner following the link) changes nothing.
    confirm = client.get(link)
    assert confirm.status_code == 200
    assert b"Acknowledge incident #" in confirm.content and b'method="post"' in confirm.content
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.OPEN

    done = client.post(link, {"reason": "Looking at the dashboards"})
    assert done.status_code == 302 and done["Location"] == f"/incidents/{incident.pk}/"
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.ACKNOWLEDGED
    entry = incident.events.get(verb=IncidentVerb.ACKNOWLEDGED)
    assert (entry.actor_name, entry.reason) == ("alice", "Looking at the dashboards")

    # The link again, later: nothing to do, and a second POST is refused with the reason.
    again = client.get(link).content.decode()
    assert "Nothing to do: the incident is acknowledged (by alice at" in again
    refused = client.post(link)
    assert refused.status_code == 409
    assert "it is acknowledged (by alice" in refused.content.decode()

    resolve = f"/incidents/{incident.pk}/resolve/"
    assert resolve in page.body
    assert client.post(resolve, {"reason": "Rolled back"}).status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    detail = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert "Resolved incident #" in detail  # the success message
    assert "escalated to L1: paging Ada" in detail and "Rolled back" in detail
    assert "ada@example.com" in detail
    assert re.search(r"\(after \d+s\)", detail)  # time to acknowledge and to resolve
    assert "escalating until someone acknowledges (as PagerDuty)" in detail


def test_a_paged_person_without_a_role_may_respond_others_may_not(
    client, service, routing, people, run
):
    ada = UserFactory(username="ada")
    people["ada"].user = ada
    people["ada"].save()
    incident = run(lifecycle.open_incident, service=service, title="Down", actor=SYSTEM)
    link = f"/incidents/{incident.pk}/acknowledge/"

    stranger = UserFactory(username="stranger")
    signed_in(client, stranger)
    assert client.get(link).status_code == 403
    assert client.post(link).status_code == 403
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.OPEN

    signed_in(client, ada)
    assert client.post(link).status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.ACKNOWLEDGED


def test_a_viewer_sees_the_incident_but_cannot_act(client, victor, service):
    incident = lifecycle.open_incident(service=service, title="Down", actor=SYSTEM)
    signed_in(client, victor)
    detail = client.get(f"/incidents/{incident.pk}/").content.decode()
    assert "Down" in detail and "/acknowledge/" not in detail
    confirm = client.get(f"/incidents/{incident.pk}/acknowledge/").content.decode()
    assert "You may not respond to this incident" in confirm
    assert client.post(f"/incidents/{incident.pk}/acknowledge/").status_code == 403

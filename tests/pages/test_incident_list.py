"""/incidents/: unresolved first by severity, their age, the escalation level reached, who was
paged, and acknowledge / resolve buttons that post to the incidents app's own pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import IncidentStatus, Severity
from apps.incidents.escalation import escalate_due
from apps.incidents.models import IncidentRouting
from tests.incidents.conftest import contact, make_policy, make_rotation
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # a Monday, 03:00 in Berlin
SYSTEM = Actor.system("tests")


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def paging(service):
    people = {
        name.lower(): contact(name)
        for name in ("Ada", "Ben", "Sam", "Pia", "Emma", "Xavier", "Cleo")
    }
    rotation = make_rotation("Platform on-call", [people["ada"], people["ben"]])
    policy = make_policy(people, rotation)
    IncidentRouting.objects.create(service=service, policy=policy)
    return people


def open_incident(service, title: str, severity: str, **fields):
    return lifecycle.open_incident(
        service=service, title=title, actor=SYSTEM, severity=severity, **fields
    )


def listing(user, **params) -> str:
    response = client_for(user).get(reverse("pages:incidents"), params)
    assert response.status_code == 200
    return response.content.decode()


def titles(html: str) -> list[str]:
    return re.findall(r'class="release-link" href="/incidents/\d+/">#\d+ ([^<]+)</a>', html)


def test_unresolved_first_by_severity_with_age_level_and_pages(
    clock, service, other_service, paging, victor
):
    old = open_incident(service, "Old outage", Severity.SEV1)
    lifecycle.resolve(old, actor=SYSTEM, reason="fixed")
    clock.shift(timedelta(days=8))
    recent = open_incident(service, "Yesterday's blip", Severity.SEV3)
    lifecycle.resolve(recent, actor=SYSTEM, reason="fixed")
    clock.shift(timedelta(hours=2))
    sev2 = open_incident(service, "Error rate above 3 %", Severity.SEV2)
    escalate_due()
    clock.shift(timedelta(minutes=16))
    escalate_due()  # L2: Sam and Pia
    sev1 = open_incident(service, "Checkout down", Severity.SEV1)
    escalate_due()  # L1 for the new one
    open_incident(other_service, "Billing slow", Severity.SEV4)  # no policy: nobody paged
    clock.shift(timedelta(minutes=4))

    html = listing(victor)
    assert titles(html) == [
        "Checkout down",
        "Error rate above 3 %",
        "Billing slow",
        "Yesterday&#x27;s blip",
    ]
    row = re.search(rf"#{sev2.pk} Error rate.*?</li>", html, re.S)[0]
    assert "opened 20m ago" in row
    assert "escalation: <strong>L2</strong>" in row
    paged = re.search(r"Paged: ([^<]+)</p>", row)[1]
    assert "Sam (L2)" in paged and "Pia (L2)" in paged
    assert ("Ada (L1)" in paged) != ("Ben (L1)" in paged)  # whoever is on call
    first = re.search(rf"#{sev1.pk} Checkout down.*?</li>", html, re.S)[0]
    assert "escalation: <strong>L1</strong>" in first and "opened 4m ago" in first
    billing = re.search(r"Billing slow.*?</li>", html, re.S)[0]
    assert "escalation: <strong>no policy</strong>" in billing and "nobody yet" in billing

    assert "Old outage" in listing(victor, status="all")
    assert titles(listing(victor, service=other_service.slug)) == ["Billing slow"]


def test_acknowledge_and_resolve_from_the_list(clock, service, paging, rita, victor):
    incident = open_incident(service, "Error rate above 3 %", Severity.SEV2)
    viewer_html = listing(victor)
    assert "Acknowledge</button>" not in viewer_html
    assert "Acknowledging and resolving needs the Approvers or Release managers role" in viewer_html
    ack_url = reverse("incidents:acknowledge", args=[incident.pk])
    assert client_for(victor).post(ack_url).status_code == 403

    client = client_for(rita)
    html = listing(rita)
    assert re.search(rf'<form method="post" action="{ack_url}">', html)
    assert client.post(ack_url).status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.ACKNOWLEDGED

    html = listing(rita)
    assert "Acknowledge</button>" not in html
    resolve_url = reverse("incidents:resolve", args=[incident.pk])
    assert re.search(rf'<form method="post" action="{resolve_url}">', html)
    assert client.post(resolve_url, {"reason": "Rolled back"}).status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED


def test_the_list_reads_a_fixed_number_of_queries(
    clock, service, paging, victor, django_assert_num_queries
):
    open_incident(service, "First", Severity.SEV2)
    escalate_due()
    client = client_for(victor)
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("pages:incidents"))
    for index in range(15):
        open_incident(service, f"More {index}", Severity.SEV3, fingerprint=f"fp-{index}")
        clock.shift(timedelta(minutes=16))
        escalate_due()
    with django_assert_num_queries(len(queries)):
        client.get(reverse("pages:incidents"))


def test_the_release_page_lists_its_incidents(rollout, victor):
    incident = open_incident(
        rollout.release.service, "Breach <b>bold</b>", Severity.SEV2, release=rollout.release
    )
    html = client_for(victor).get(reverse("pages:release", args=[rollout.release.pk])).content
    html = html.decode()
    section = re.search(r'<section id="incidents".*?</section>', html, re.S)[0]
    assert (
        f'href="/incidents/{incident.pk}/">#{incident.pk} Breach &lt;b&gt;bold&lt;/b&gt;' in section
    )
    assert "SEV2" in section and "Open" in section

"""Admin: incidents with filters, timeline and actions; policies, rotations, deliveries, routing."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import DeliveryStatus, IncidentStatus, IncidentVerb, Severity
from apps.incidents.models import (
    EscalationPolicy,
    Incident,
    IncidentRouting,
    NotificationDelivery,
)
from tests.factories import ServiceFactory, make_release
from tests.incidents.conftest import closed_port, make_policy

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
T0 = datetime.fromisoformat("2026-03-10 10:00:00+00:00")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_incident_list_filters_in_a_fixed_number_of_queries(
    rita, service, django_assert_num_queries
):
    lifecycle.open_incident(service=service, title="Down", severity=Severity.SEV1, actor=SYSTEM)
    client = logged_in(rita)
    url = reverse("admin:incidents_incident_changelist")
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        client.get(url + "?severity__exact=sev1&status__exact=open")
    for n in range(6):
        other = ServiceFactory(name=f"Service {n}", slug=f"service-{n}")
        made = lifecycle.open_incident(
            service=other, title=f"Alert {n}", severity=Severity.SEV1, actor=SYSTEM
        )
        if n % 2:
            lifecycle.acknowledge(made, actor=SYSTEM)
    with django_assert_num_queries(len(one.captured_queries)):
        response = client.get(url + "?severity__exact=sev1&status__exact=open")
    assert response.context["cl"].result_count == 4
    response = client.get(url + "?status__exact=acknowledged")
    assert response.context["cl"].result_count == 3


def test_acknowledge_and_resolve_actions_report_what_they_did(rita, victor, service):
    first = lifecycle.open_incident(service=service, title="One", actor=SYSTEM)
    second = lifecycle.open_incident(service=service, title="Two", actor=SYSTEM)
    lifecycle.acknowledge(second, actor=SYSTEM)
    url = reverse("admin:incidents_incident_changelist")
    client = logged_in(rita)
    response = client.post(
        url,
        {"action": "acknowledge_incidents", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    texts = [str(m) for m in response.context["messages"]]
    assert f"Acknowledged 1 incident(s): #{first.pk}." in texts
    assert any(t.startswith(f"Cannot acknowledge incident #{second.pk}") for t in texts)
    client.post(url, {"action": "resolve_incidents", "_selected_action": [first.pk, second.pk]})
    assert set(Incident.objects.values_list("status", flat=True)) == {IncidentStatus.RESOLVED}
    assert first.events.get(verb=IncidentVerb.RESOLVED).actor_name == "rita"

    # A viewer sees the list but is offered no action.
    viewer_page = logged_in(victor).get(url)
    assert viewer_page.status_code == 200
    assert "acknowledge_incidents" not in viewer_page.content.decode()


def test_the_incident_page_shows_its_timeline_and_edits_are_recorded(rita, service):
    incident = lifecycle.open_incident(service=service, title="Down", actor=SYSTEM)
    lifecycle.acknowledge(incident, actor=SYSTEM, reason="on it")
    client = logged_in(rita)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    page = client.get(url).content.decode()
    assert "Timeline" in page and "on it" in page and "acknowledged" in page

    response = client.post(
        url,
        {
            "title": "Checkout down",
            "severity": "sev1",
            "description": "",
            "release": "",
            **_empty_inlines(),
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    incident.refresh_from_db()
    assert (incident.title, incident.severity, incident.status) == (
        "Checkout down",
        "sev1",
        IncidentStatus.ACKNOWLEDGED,
    )
    updated = incident.events.get(verb=IncidentVerb.UPDATED)
    assert updated.actor_name == "rita"
    assert updated.data["severity"] == {"from": "sev3", "to": "sev1"}


def _empty_inlines() -> dict[str, str]:
    data = {}
    for prefix in ("events", "deliveries"):
        data |= {
            f"{prefix}-TOTAL_FORMS": "0",
            f"{prefix}-INITIAL_FORMS": "0",
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
        }
    return data


def test_opening_an_incident_in_the_admin_goes_through_the_lifecycle(rita, service, routing):
    client = logged_in(rita)
    response = client.post(
        reverse("admin:incidents_incident_add"),
        {"service": service.pk, "title": "Payments failing", "severity": "sev2"},
    )
    assert response.status_code == 302
    incident = Incident.objects.get()
    assert response["Location"] == reverse("admin:incidents_incident_changelist")
    assert (incident.title, incident.severity, incident.policy) == (
        "Payments failing",
        "sev2",
        routing.policy,
    )
    verbs = list(incident.events.order_by("id").values_list("verb", flat=True))
    assert verbs == [IncidentVerb.OPENED, IncidentVerb.ESCALATED]


def test_a_policy_refuses_a_higher_level_before_a_lower_one(rita, people):
    client = logged_in(rita)
    data = {
        "name": "Bad order",
        "escalate_while": "unacknowledged",
        "repeat_times": "0",
        "repeat_after_minutes": "30",
        "levels-TOTAL_FORMS": "2",
        "levels-INITIAL_FORMS": "0",
        "levels-MIN_NUM_FORMS": "0",
        "levels-MAX_NUM_FORMS": "1000",
        "levels-0-position": "1",
        "levels-0-after_minutes": "20",
        "levels-0-contacts": [people["ada"].pk],
        "levels-1-position": "2",
        "levels-1-after_minutes": "10",
        "levels-1-contacts": [people["sam"].pk],
    }
    response = client.post(reverse("admin:incidents_escalationpolicy_add"), data)
    assert response.status_code == 200
    assert "L2 comes after 10 min, before L1 (20 min)" in response.content.decode()
    assert not EscalationPolicy.objects.exists()
    data["levels-1-after_minutes"] = "30"
    assert client.post(reverse("admin:incidents_escalationpolicy_add"), data).status_code == 302
    assert EscalationPolicy.objects.get().levels.count() == 2


def test_a_rotation_previews_its_next_four_handoffs(rita, rotation):
    with time_machine.travel(T0, tick=False):
        client = logged_in(rita)
        page = client.get(reverse("admin:incidents_oncallrotation_change", args=[rotation.pk]))
    html = page.content.decode()
    assert "Ada (Platform engineer)" in html  # on call now
    for line in (
        "Mon 2026-03-16 09:00 CET: Ben (Platform engineer)",
        "Mon 2026-03-23 09:00 CET: Ada (Platform engineer)",
        "Mon 2026-03-30 09:00 CEST: Ben (Platform engineer)",
        "Mon 2026-04-06 09:00 CEST: Ada (Platform engineer)",
    ):
        assert line in html


def test_failed_deliveries_can_be_resent_from_the_admin(
    rita, service, receiver, django_capture_on_commit_callbacks
):
    routing = IncidentRouting.objects.create(
        service=service, webhook_url=f"http://127.0.0.1:{closed_port()}/down"
    )
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.open_incident(service=service, title="Down", actor=SYSTEM)
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    # The hook is fixed; the row still names its old target, so point it at the live receiver.
    routing.webhook_url = receiver.url
    routing.save()
    NotificationDelivery.objects.filter(pk=delivery.pk).update(target=receiver.url)

    client = logged_in(rita)
    url = reverse("admin:incidents_notificationdelivery_changelist")
    listing = client.get(url + "?status__exact=failed").content.decode()
    assert "Connection refused" in listing or "Errno 111" in listing
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, {"action": "resend_deliveries", "_selected_action": [delivery.pk]}, follow=True
        )
    assert "Queued 1 delivery(ies) to send again." in [str(m) for m in response.context["messages"]]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)
    assert len(receiver.received) == 1


def test_a_service_page_edits_its_incident_routing(rita, service, policy):
    client = logged_in(rita)
    page = client.get(reverse("admin:releases_service_change", args=[service.pk]))
    html = page.content.decode()
    assert 'name="incident_routing-TOTAL_FORMS"' in html
    assert 'name="incident_routing-0-webhook_url"' in html


def test_roles_hold_the_incident_permissions(rita, alice, victor):
    assert rita.has_perm("incidents.respond_incident")
    assert rita.has_perm("incidents.change_escalationpolicy")
    assert rita.has_perm("incidents.change_notificationdelivery")
    assert alice.has_perm("incidents.respond_incident")
    assert not alice.has_perm("incidents.change_escalationpolicy")
    assert victor.has_perm("incidents.view_incident")
    assert not victor.has_perm("incidents.respond_incident")


def test_an_edit_naming_another_services_release_is_refused(rita, service, other_service):
    incident = lifecycle.open_incident(service=service, title="Down", actor=SYSTEM)
    elsewhere = make_release(service=other_service)
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    response = logged_in(rita).post(
        url,
        {
            "title": "Down",
            "severity": "sev3",
            "description": "",
            "release": elsewhere.pk,
            **_empty_inlines(),
        },
    )
    assert response.status_code == 200
    assert "This release is not a release of AI Orchestra." in response.content.decode()
    incident.refresh_from_db()
    assert incident.release is None
    assert not incident.events.filter(verb=IncidentVerb.UPDATED).exists()


def test_delivery_and_policy_lists_cost_a_fixed_number_of_queries(
    rita, service, people, rotation, routing, run, django_assert_num_queries
):
    client = logged_in(rita)
    deliveries = reverse("admin:incidents_notificationdelivery_changelist")
    policies = reverse("admin:incidents_escalationpolicy_changelist")
    run(lifecycle.open_incident, service=service, title="Down", actor=SYSTEM)
    with CaptureQueriesContext(connection) as few_deliveries:
        client.get(deliveries)
    with CaptureQueriesContext(connection) as few_policies:
        client.get(policies)
    for n in range(4):
        more = ServiceFactory(name=f"Service {n}", slug=f"service-{n}")
        policy = make_policy(people, rotation, name=f"Policy {n}")
        IncidentRouting.objects.create(service=more, policy=policy)
        run(lifecycle.open_incident, service=more, title=f"Down {n}", actor=SYSTEM)
    with django_assert_num_queries(len(few_deliveries.captured_queries)):
        response = client.get(deliveries)
    assert response.context["cl"].result_count == 5
    with django_assert_num_queries(len(few_policies.captured_queries)):
        response = client.get(policies)
    assert "Service 3" in response.content.decode()

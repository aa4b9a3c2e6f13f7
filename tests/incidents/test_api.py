"""GET|POST /api/v1/incidents/ and POST /api/v1/incidents/{id}/acknowledge|resolve/."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import IncidentStatus, IncidentVerb, Severity
from apps.incidents.models import Incident
from tests.factories import UserFactory, make_release

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


def incident(service, severity=Severity.SEV2, title="Checkout down", **fields) -> Incident:
    return lifecycle.open_incident(
        service=service, title=title, severity=severity, actor=SYSTEM, **fields
    )


def person(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_list_filters_by_service_status_and_severity_in_a_fixed_number_of_queries(
    api, service, other_service, rita, django_assert_num_queries
):
    sev1 = incident(service, Severity.SEV1)
    sev3 = incident(service, Severity.SEV3, title="Slow page")
    billing = incident(other_service, Severity.SEV1, title="Invoices late")
    lifecycle.resolve(sev3, actor=SYSTEM)

    # A token sees its own services' incidents only.
    ids = [row["id"] for row in api.get("/api/v1/incidents/").json()["results"]]
    assert ids == [sev3.pk, sev1.pk]
    people = person(rita)
    assert len(people.get("/api/v1/incidents/").json()["results"]) == 3
    assert [
        r["id"] for r in people.get("/api/v1/incidents/?service=billing").json()["results"]
    ] == [billing.pk]
    assert [
        r["id"] for r in people.get("/api/v1/incidents/?status=resolved").json()["results"]
    ] == [sev3.pk]
    query = "/api/v1/incidents/?severity=sev1&status=open&status=acknowledged"
    assert [r["id"] for r in people.get(query).json()["results"]] == [billing.pk, sev1.pk]
    bad = people.get("/api/v1/incidents/?severity=sev9")
    assert bad.status_code == 400 and "severity" in bad.json()

    row = api.get("/api/v1/incidents/").json()["results"][0]
    assert row["service"] == "ai-orchestra"
    assert row["time_to_resolve_seconds"] == 0 and row["time_to_acknowledge_seconds"] is None

    with CaptureQueriesContext(connection) as few:
        api.get("/api/v1/incidents/")
    for n in range(5):
        incident(service, title=f"More {n}", release=make_release(service=service))
    with django_assert_num_queries(len(few.captured_queries)):
        response = api.get("/api/v1/incidents/")
    assert response.json()["count"] == 7


def test_open_an_incident_through_the_api(api, service, production, other_service, routing):
    release = make_release(service=service, environment=production)
    response = api.post(
        "/api/v1/incidents/",
        {
            "service": "ai-orchestra",
            "title": "Deploy broke login",
            "severity": "sev1",
            "description": "Reported by the deploy script.",
            "release": release.pk,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["severity"], body["source"], body["release"]) == (
        "open",
        "sev1",
        "manual",
        release.pk,
    )
    created = Incident.objects.get(pk=body["id"])
    assert created.events.get(verb=IncidentVerb.OPENED).actor_name == "token:ci"
    assert created.escalation_step == 1  # L1 paged at once

    elsewhere = api.post("/api/v1/incidents/", {"service": "billing", "title": "x"}, format="json")
    assert elsewhere.status_code == 403
    bad = api.post(
        "/api/v1/incidents/",
        {"service": "ai-orchestra", "title": "", "severity": "sev0"},
        format="json",
    )
    assert bad.status_code == 400 and set(bad.json()) == {"title", "severity"}
    wrong_release = make_release(service=other_service, environment=production)
    mismatch = api.post(
        "/api/v1/incidents/",
        {"service": "ai-orchestra", "title": "x", "release": wrong_release.pk},
        format="json",
    )
    assert mismatch.status_code == 400 and "release" in mismatch.json()
    assert Incident.objects.count() == 1


def test_acknowledge_then_resolve_and_409_when_it_is_too_late(api, service):
    opened = incident(service)
    url = f"/api/v1/incidents/{opened.pk}"
    response = api.post(f"{url}/acknowledge/", {"reason": "On it"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == IncidentStatus.ACKNOWLEDGED
    again = api.post(f"{url}/acknowledge/", format="json")
    assert again.status_code == 409
    assert again.json()["detail"].startswith(
        f"Cannot acknowledge incident #{opened.pk}: it is acknowledged (by token:ci at "
    )
    resolved = api.post(f"{url}/resolve/", {"reason": "Rolled back"}, format="json")
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert api.post(f"{url}/resolve/", format="json").status_code == 409
    detail = api.get(f"{url}/").json()
    assert [e["verb"] for e in detail["timeline"]] == ["opened", "acknowledged", "resolved"]
    assert detail["timeline"][1]["reason"] == "On it"


def test_who_may_acknowledge(service, other_service, alice, victor, routing, people, run):
    opened = run(incident, service)
    url = f"/api/v1/incidents/{opened.pk}/acknowledge/"
    # A viewer may read but not respond.
    assert person(victor).get(f"/api/v1/incidents/{opened.pk}/").status_code == 200
    refused = person(victor).post(url, format="json")
    assert refused.status_code == 403 and "may not respond" in refused.json()["detail"]
    # Someone with no role at all, but paged for this incident (Ada's contact is her user).
    ada = UserFactory(username="ada")
    people["ada"].user = ada
    people["ada"].save()
    assert person(ada).post(url, format="json").status_code == 200
    # A token of another service may not touch it; an approver may respond.
    _, key = ApiToken.issue("billing", [other_service])
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert other.post(f"/api/v1/incidents/{opened.pk}/resolve/", format="json").status_code == 403
    assert person(alice).post(f"/api/v1/incidents/{opened.pk}/resolve/").status_code == 200
    assert APIClient().get("/api/v1/incidents/").status_code == 401

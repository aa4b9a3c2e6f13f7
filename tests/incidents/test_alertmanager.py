"""POST /api/v1/hooks/alertmanager/: Alertmanager's webhook payload, version 4."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.incidents.choices import IncidentSource, IncidentStatus, IncidentVerb, Severity
from apps.incidents.models import Incident, IncidentEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/hooks/alertmanager/"


def alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "HighErrorRate",
            "service": "ai-orchestra",
            "severity": "critical",
            "instance": "api-1",
            **labels,
        },
        "annotations": {
            "summary": "Error rate above 5% on api-1",
            "description": "5xx share is 7.2% over 5 minutes.",
        },
        "startsAt": "2026-03-10T10:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-10T10:20:00.000Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=errors",
        "fingerprint": "c0ffee0123456789",
    }


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "rolloutdesk",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@pytest.fixture
def post(api, django_capture_on_commit_callbacks):
    def call(body: Any, client: APIClient | None = None, **kwargs: Any):
        with django_capture_on_commit_callbacks(execute=True):
            return (client or api).post(URL, body, format="json", **kwargs)

    return call


def test_firing_opens_an_incident_and_repeats_update_it(service, routing, post):
    first = post(payload(alert()))
    assert first.status_code == 200, first.content
    [incident_id] = first.json()["opened"]
    incident = Incident.objects.get(pk=incident_id)
    assert (incident.service, incident.source, incident.severity, incident.status) == (
        service,
        IncidentSource.ALERTMANAGER,
        Severity.SEV1,
        IncidentStatus.OPEN,
    )
    assert incident.title == "Error rate above 5% on api-1"
    assert incident.description == "5xx share is 7.2% over 5 minutes."
    assert incident.fingerprint == "alertmanager:c0ffee0123456789"
    assert incident.link == "http://prometheus:9090/graph?g0.expr=errors"
    assert incident.labels["labels"]["instance"] == "api-1"
    assert incident.policy == routing.policy  # and L1 is paged at once
    assert incident.events.filter(verb=IncidentVerb.ESCALATED).count() == 1

    again = post(payload(alert()))
    assert again.json() == {"opened": [], "updated": [incident_id], "resolved": [], "ignored": 0}
    assert Incident.objects.count() == 1
    incident.refresh_from_db()
    assert incident.trigger_count == 2
    assert incident.events.filter(verb=IncidentVerb.TRIGGERED_AGAIN).count() == 1


def test_resolved_resolves_it_and_a_new_firing_opens_another(service, post):
    opened = post(payload(alert())).json()["opened"][0]
    resolved = post(payload(alert("resolved"), status="resolved"))
    assert resolved.status_code == 200
    assert resolved.json()["resolved"] == [opened]
    incident = Incident.objects.get(pk=opened)
    assert incident.status == IncidentStatus.RESOLVED
    entry = incident.events.get(verb=IncidentVerb.RESOLVED)
    assert entry.actor_name == "token:ci"
    assert "resolved" in entry.reason

    # Resolved twice: nothing left to resolve.
    assert post(payload(alert("resolved"))).json()["ignored"] == 1
    # It fires again after being resolved: a new incident, as PagerDuty would.
    reopened = post(payload(alert())).json()["opened"]
    assert reopened and reopened != [opened]


def test_alerts_without_a_fingerprint_are_matched_by_their_labels(service, post):
    one, two = alert(), alert(instance="api-2")
    for item in (one, two):
        del item["fingerprint"]
    body = post(payload(one, two)).json()
    assert len(body["opened"]) == 2
    assert post(payload(one)).json()["updated"] == body["opened"][:1]


def test_a_repeat_with_a_worse_severity_raises_it_never_lowers(service, post):
    opened = post(payload(alert(severity="warning"))).json()["opened"][0]
    assert Incident.objects.get(pk=opened).severity == Severity.SEV3
    post(payload(alert(severity="critical")))
    post(payload(alert(severity="info")))
    incident = Incident.objects.get(pk=opened)
    assert incident.severity == Severity.SEV1
    raised = incident.events.filter(verb=IncidentVerb.TRIGGERED_AGAIN).order_by("id").first()
    assert raised.data["severity"] == {"from": "sev3", "to": "sev1"}


def test_an_unknown_service_is_422_with_the_reason_and_nothing_is_written(service, post):
    good, unknown, unlabelled = alert(), alert(service="payments"), alert()
    del unlabelled["labels"]["service"]
    unknown["fingerprint"] = "beef"
    response = post(payload(good, unknown, unlabelled))
    assert response.status_code == 422
    body = response.json()
    assert body["label"] == "service"
    assert body["alerts"] == [
        {
            "index": 1,
            "fingerprint": "beef",
            "reason": "service='payments' is not a service rolloutdesk knows (use its slug or "
            "name).",
        },
        {
            "index": 2,
            "fingerprint": "c0ffee0123456789",
            "reason": "The alert has no 'service' label.",
        },
    ]
    assert Incident.objects.count() == 0
    assert IncidentEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "The body must be a JSON object"),
        ({"version": "4"}, "alerts must be a list."),
        ({**payload(alert()), "version": "3"}, "version must be \"4\", not '3'."),
        (payload(alert("pending")), 'alerts[0].status must be "firing" or "resolved"'),
        (payload({**alert(), "labels": ["service"]}), "alerts[0].labels must be an object"),
        (payload("not an alert"), "alerts[0] must be an object."),
    ],
)
def test_a_malformed_payload_is_400_naming_the_problem(service, post, body, message):
    response = post(body)
    assert response.status_code == 400
    assert any(message in error for error in response.json()["errors"]), response.json()
    assert Incident.objects.count() == 0


def test_a_body_that_is_not_json_is_400(service, api):
    response = api.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_the_service_label_is_configurable(service, post, settings):
    settings.INCIDENTS_ALERTMANAGER_SERVICE_LABEL = "app"
    item = alert(app="AI Orchestra")  # a service's name works as well as its slug
    del item["labels"]["service"]
    assert post(payload(item)).status_code == 200

    other = copy.deepcopy(item)
    other["labels"] = {"job": "ai-orchestra", "alertname": "Down"}
    other["fingerprint"] = "other"
    assert post(payload(other)).status_code == 422
    per_receiver = post(payload(other), QUERY_STRING="service_label=job")
    assert per_receiver.status_code == 200
    assert len(per_receiver.json()["opened"]) == 1


def test_a_token_acts_only_on_its_own_services(service, other_service, post):
    _, key = ApiToken.issue("billing-am", [other_service])
    billing_only = APIClient()
    billing_only.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = post(payload(alert()), client=billing_only)
    assert response.status_code == 403
    assert "ai-orchestra" in response.json()["detail"]
    assert Incident.objects.count() == 0


def test_people_and_anonymous_callers_are_refused(service, rita, post):
    assert APIClient().post(URL, payload(alert()), format="json").status_code == 401
    session = APIClient()
    session.force_login(rita)
    assert session.post(URL, payload(alert()), format="json").status_code in (401, 403)

"""GET /api/v1/releases/{id}/signoffs/: sign-offs and what is still needed; tokens cannot sign."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.signoffs import services
from apps.signoffs.choices import Decision
from apps.signoffs.models import SignOff

from .conftest import PRODUCT, member

pytestmark = pytest.mark.django_db


def url(release) -> str:
    return f"/api/v1/releases/{release.pk}/signoffs/"


def person(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_lists_sign_offs_and_what_is_still_needed(running, api, erin, paul):
    body = api.get(url(running)).json()
    assert body["gate"] == "leaving stage canary" and body["stage"] == "canary"
    assert body["rule"]["groups"] == ["Engineering managers", "Product"]
    assert body["rule"]["quorum"] == "each_group"
    assert body["still_needed"]["groups"] == ["Engineering managers", "Product"]
    assert (body["met"], body["signoffs"]) == (False, [])

    services.sign(running, user=erin, decision=Decision.GO, comment="ok")
    services.sign(running, user=paul, decision=Decision.NO_GO, comment="docs missing")
    body = api.get(url(running)).json()
    assert body["still_needed"]["groups"] == ["Product"]
    assert body["no_gos"][0]["signer"] == "paul"
    assert body["no_gos"][0]["comment"] == "docs missing"
    assert {(s["signer"], s["decision"], s["state"]) for s in body["signoffs"]} == {
        ("erin", "go", "standing"),
        ("paul", "no_go", "standing"),
    }

    services.withdraw(running, user=paul)
    services.sign(running, user=paul, decision=Decision.GO)
    body = api.get(url(running)).json()
    assert (body["met"], body["still_needed"]) == (True, None)
    states = sorted(s["state"] for s in body["signoffs"])
    assert states == ["standing", "standing", "withdrawn"]


def test_a_token_cannot_sign(running, api):
    response = api.post(url(running), {"decision": "go"}, format="json")
    assert response.status_code == 403
    assert "API token cannot sign" in response.json()["detail"]
    assert not SignOff.objects.exists()


def test_a_person_signs_through_the_api_under_the_same_rules(running, paul, victor):
    response = person(paul).post(url(running), {"decision": "no_go"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"comment": ["A no-go needs a comment saying why."]}

    response = person(victor).post(url(running), {"decision": "go"}, format="json")
    assert response.status_code == 403
    assert "not in any group" in response.json()["detail"]

    response = person(paul).post(url(running), {"decision": "go"}, format="json")
    assert response.status_code == 201
    assert response.json()["still_needed"]["groups"] == ["Engineering managers"]


def test_people_need_view_permission_or_a_signing_group_to_read(running, victor, paul, dave):
    assert person(victor).get(url(running)).status_code == 200
    assert person(paul).get(url(running)).status_code == 200  # Product, asked by this release
    assert person(dave).get(url(running)).status_code == 403
    assert APIClient().get(url(running)).status_code in (401, 403)


@pytest.mark.parametrize(
    "body", [{"decision": "go"}, {"decision": "no_go"}, {"decision": "maybe"}, {}]
)
def test_a_refusal_tells_someone_who_may_not_read_nothing_of_the_gate(running, dave, body):
    response = person(dave).post(url(running), body, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to do that."}
    assert not SignOff.objects.exists()


def test_a_release_without_rules_answers_nothing_needed(service, production, api):
    from tests.factories import make_release

    release = make_release(service=service, environment=production)
    body = api.get(url(release)).json()
    assert (body["rule"], body["met"], body["still_needed"]) == (None, True, None)


def test_the_list_costs_the_same_for_many_sign_offs(
    running, api, groups, erin, django_assert_num_queries
):
    services.sign(running, user=erin, decision=Decision.GO)
    api.get(url(running))  # the token's first use of the minute stamps last_used_at
    with django_assert_num_queries(7) as few:  # the token reads its services in one query
        api.get(url(running))
    for n in range(6):
        services.sign(running, user=member(f"p{n}", groups[PRODUCT]), decision=Decision.GO)
    with django_assert_num_queries(len(few.captured_queries)):
        response = api.get(url(running))
    assert len(response.json()["signoffs"]) == 7

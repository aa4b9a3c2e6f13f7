"""The CI contract under /api/v1/: registration, transitions, gate, traffic, bucket, errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Release
from tests.factories import EnvironmentFactory, PlanFactory, make_release

pytestmark = pytest.mark.django_db


def register(api: APIClient, **fields: object):
    body = {"service": "ai-orchestra", "environment": "production", "version": "2.4.0"}
    body.update(fields)
    return api.post("/api/v1/releases/", body, format="json")


def test_register_copies_the_plan_and_is_idempotent(api, service, production):
    response = register(
        api,
        commit_sha="a1b2c3d4e5f6",
        commit_time="2026-11-01T10:00:00Z",
        changelog_url="https://example.com/changes/2.4.0",
        author="dana",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "planned" and body["traffic_percentage"] == 0
    assert [s["name"] for s in body["stages"]] == ["canary", "quarter", "half", "full"]
    assert body["author"] == "dana" and body["plan"] == service.default_plan.slug
    event = Release.objects.get().events.get()
    assert (event.verb, event.actor_name) == (EventVerb.CREATED, "token:ci")

    again = register(api)
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert Release.objects.count() == 1


def test_plan_edits_never_rewrite_an_existing_release(api, service, production):
    release_id = register(api).json()["id"]
    service.default_plan.stages.filter(name="canary").update(traffic_percentage=1)
    stages = api.get(f"/api/v1/releases/{release_id}/").json()["stages"]
    assert stages[0]["traffic_percentage"] == 5


def test_bad_fields_are_named(api, service, production):
    response = api.post(
        "/api/v1/releases/",
        {"service": "nope", "environment": "production", "commit_sha": "xyz", "plan": "ghost"},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"service", "version", "commit_sha", "plan"}
    assert "nope" in errors["service"][0]
    assert Release.objects.count() == 0


def test_service_without_plan_is_a_400_naming_plan(api, service, production):
    service.default_plan = None
    service.save()
    response = register(api)
    assert response.status_code == 400
    assert "no default plan" in response.json()["plan"][0]


def test_full_ci_flow(api, service, production):
    release_id = register(api).json()["id"]
    base = f"/api/v1/releases/{release_id}"
    first = api.get(f"{base}/gate/").json()
    assert first.pop("computed_at") and first == {
        "can_advance": True,
        "step": "start",
        "stage": None,
        "status": "planned",
        "blockers": [],
        "version": 1,
    }
    started = api.post(f"{base}/start/", {"reason": "pipeline 88"}, format="json")
    assert started.status_code == 200 and started.json()["stage"] == "canary"
    assert api.get(f"{base}/traffic/").json() == {
        "percentage": 5,
        "status": "in_progress",
        "stage": "canary",
    }
    assert api.post(f"{base}/advance/").json()["traffic_percentage"] == 25
    assert api.post(f"{base}/pause/", {"reason": "error budget"}).json()["status"] == "paused"
    gate = api.get(f"{base}/gate/").json()
    assert gate["can_advance"] is False and gate["blockers"][0]["kind"] == "paused"
    assert api.post(f"{base}/resume/").status_code == 200
    rolled = api.post(f"{base}/rollback/", {"reason": "p95 regression"}, format="json")
    assert rolled.json()["status"] == "rolled_back"
    assert api.get(f"{base}/traffic/").json()["percentage"] == 0
    verbs = list(Release.objects.get().events.order_by("id").values_list("verb", "actor_name"))
    assert [v for v, _ in verbs] == [
        "created",
        "started",
        "advanced",
        "paused",
        "resumed",
        "rolled_back",
    ]
    assert {a for _, a in verbs} == {"token:ci"}


def test_red_gate_answers_409_with_blockers(api, service, production):
    plan = PlanFactory(
        slug="slow",
        stages=[("canary", 5, timedelta(hours=24), False), ("all", 100, timedelta(0), False)],
    )
    release_id = register(api, plan="slow").json()["id"]
    api.post(f"/api/v1/releases/{release_id}/start/")
    response = api.post(f"/api/v1/releases/{release_id}/advance/", {"reason": "now"})
    assert response.status_code == 409
    body = response.json()
    assert "gate is red" in body["detail"]
    assert body["blockers"][0]["kind"] == "soak"
    assert "remaining" in body["blockers"][0]["detail"]
    forced = api.post(
        f"/api/v1/releases/{release_id}/advance/", {"reason": "now", "force": True}, format="json"
    )
    assert forced.status_code == 403  # a token can never override the gate
    assert Release.objects.get().current_stage.name == "canary"
    assert plan.pk


def test_transition_not_allowed_now_is_409_with_reason(api, service, production):
    release_id = register(api).json()["id"]
    response = api.post(f"/api/v1/releases/{release_id}/resume/")
    assert response.status_code == 409
    assert response.json()["detail"] == "Cannot resume a release that is planned."
    assert api.post(f"/api/v1/releases/{release_id}/pause/", {"force": True}).status_code == 400


def test_token_scope(api, service, other_service, production):
    foreign = make_release(service=other_service, environment=production)
    mine = make_release(service=service, environment=production)
    for path in ["", "gate/", "traffic/", "bucket/?unit=u1"]:
        assert api.get(f"/api/v1/releases/{foreign.pk}/{path}").status_code == 403, path
    assert api.post(f"/api/v1/releases/{foreign.pk}/start/").status_code == 403
    foreign.refresh_from_db()
    assert foreign.status == ReleaseStatus.PLANNED
    listed = api.get("/api/v1/releases/").json()
    assert [r["id"] for r in listed["results"]] == [mine.pk]
    assert [s["slug"] for s in api.get("/api/v1/services/").json()["results"]] == ["ai-orchestra"]
    response = register(api, service="billing")
    assert response.status_code == 403
    assert "billing" in response.json()["detail"]


def test_unknown_release_is_404_and_bad_or_revoked_token_401(api, token_key, service):
    assert api.get("/api/v1/releases/999999/").status_code == 404
    assert api.post("/api/v1/releases/999999/advance/").status_code == 404
    anonymous = APIClient()
    assert anonymous.get("/api/v1/releases/").status_code == 401
    anonymous.credentials(HTTP_AUTHORIZATION="Token rd_not-a-key")
    assert anonymous.get("/api/v1/releases/").status_code == 401
    ApiToken.objects.update(revoked_at="2026-11-01T00:00:00Z")
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")
    assert revoked.get("/api/v1/releases/").status_code == 401


def test_tokens_are_stored_hashed(token_key):
    token = ApiToken.objects.get()
    assert token_key not in (token.key_hash, token.key_hint)
    assert token.key_hint == token_key[:10]


def test_list_filters(api, service, production):
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    make_release(service=service, environment=staging, version="1")
    running = make_release(service=service, environment=production, version="2")
    api.post(f"/api/v1/releases/{running.pk}/start/")
    ids = lambda q: [r["id"] for r in api.get(f"/api/v1/releases/?{q}").json()["results"]]  # noqa: E731
    assert ids("environment=production") == [running.pk]
    assert ids("status=in_progress") == [running.pk]
    assert len(ids("service=ai-orchestra")) == 2
    bad = api.get("/api/v1/releases/?status=flying")
    assert bad.status_code == 400 and "status" in bad.json()


def test_release_list_runs_a_fixed_number_of_queries(
    api, service, production, django_assert_num_queries
):
    for n in range(3):
        make_release(service=service, environment=production, version=f"a{n}")
    api.get("/api/v1/services/")  # first use stamps the token's last_used_at: not counted below
    with django_assert_num_queries(3) as small:  # the token with its services, count, page
        assert api.get("/api/v1/releases/").status_code == 200
    for n in range(30):
        make_release(service=service, environment=production, version=f"b{n}")
    with django_assert_num_queries(len(small.captured_queries)):
        assert len(api.get("/api/v1/releases/").json()["results"]) == 33


def test_bucket_is_deterministic_and_stable_as_traffic_grows(api, service, production):
    release_id = register(api).json()["id"]
    base = f"/api/v1/releases/{release_id}"
    units = [f"user-{n}" for n in range(400)]

    def treatment() -> set[str]:
        return {
            u for u in units if api.get(f"{base}/bucket/?unit={u}").json()["variant"] == "treatment"
        }

    assert treatment() == set()  # planned: 0 %
    api.post(f"{base}/start/")
    at_5 = treatment()
    assert at_5 == treatment()
    api.post(f"{base}/advance/")
    at_25 = treatment()
    assert at_5 < at_25
    assert 0.01 < len(at_5) / len(units) < 0.10
    assert 0.17 < len(at_25) / len(units) < 0.33
    response = api.get(f"{base}/bucket/")
    assert response.status_code == 400 and "unit" in response.json()


def test_people_use_the_api_with_their_session(client, rita, victor, service, production):
    release = make_release(service=service, environment=production)
    client.force_login(victor)
    assert client.get(f"/api/v1/releases/{release.pk}/").status_code == 200
    assert client.post(f"/api/v1/releases/{release.pk}/start/").status_code == 403
    client.force_login(rita)
    response = client.post(
        f"/api/v1/releases/{release.pk}/start/", {"reason": "go"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert release.events.order_by("-id").first().actor_user == rita


def test_plans_and_schema(api, service):
    plans = api.get("/api/v1/plans/").json()["results"]
    assert [s["traffic_percentage"] for s in plans[0]["stages"]] == [5, 25, 50, 100]
    schema = APIClient().get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/releases/{id}/gate/" in schema.content
    docs = APIClient().get("/api/v1/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()

"""A transition names the stage it starts from (`from_stage`): a retried or doubled request is
refused with 409 once the release has left that stage, instead of taking the step again."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Release
from apps.rollouts import transitions
from tests.factories import PlanFactory, make_release

ZERO = timedelta(0)


def zero_soak_plan(
    slug: str = "no-soak", names: tuple[str, ...] = ("canary", "quarter", "half", "all")
):
    return PlanFactory(
        slug=slug, stages=[(name, 25 * (i + 1), ZERO, False) for i, name in enumerate(names)]
    )


def started(service, production, plan) -> Release:
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=Actor.system("tests"))
    return release


def ci_client(service) -> APIClient:
    _, key = ApiToken.issue("ci", [service])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def advance_url(release) -> str:
    return f"/api/v1/releases/{release.pk}/advance/"


@pytest.mark.django_db
def test_advancing_again_from_a_stage_left_already_is_refused(service, production, rita_actor):
    release = started(service, production, zero_soak_plan())
    transitions.advance(release, actor=rita_actor, from_stage="canary")
    fresh = Release.objects.get(pk=release.pk)  # a retry reads afresh: that alone protects nothing
    with pytest.raises(transitions.TransitionError) as refused:
        transitions.advance(fresh, actor=rita_actor, from_stage="canary")
    assert "not at stage 'canary' any more: it is now in progress at stage quarter" in str(
        refused.value
    )
    fresh.refresh_from_db()
    assert fresh.current_stage.name == "quarter"
    assert fresh.events.filter(verb=EventVerb.ADVANCED).count() == 1
    # By position: 1 is quarter, where it is now.
    transitions.advance(fresh, actor=rita_actor, from_stage=1)
    with pytest.raises(transitions.TransitionError):
        transitions.advance(Release.objects.get(pk=release.pk), actor=rita_actor, from_stage=1)


@pytest.mark.django_db
def test_a_ci_retry_with_from_stage_gets_409_and_the_release_stays(service, production):
    release = started(service, production, zero_soak_plan())
    client = ci_client(service)
    first = client.post(advance_url(release), {"from_stage": "canary"}, format="json")
    assert (first.status_code, first.json()["stage"]) == (200, "quarter")
    retry = client.post(advance_url(release), {"from_stage": "canary"}, format="json")
    assert retry.status_code == 409
    assert "not at stage 'canary' any more" in retry.json()["detail"]
    by_position = client.post(advance_url(release), {"from_stage": 0}, format="json")
    assert by_position.status_code == 409
    release.refresh_from_db()
    assert release.current_stage.name == "quarter"
    # Other transitions take it too: pausing from a stage the release is not at does nothing.
    pause = f"/api/v1/releases/{release.pk}/pause/"
    held = {"reason": "latency", "from_stage": "half"}
    assert client.post(pause, held, format="json").status_code == 409
    held["from_stage"] = "quarter"
    assert client.post(pause, held, format="json").status_code == 200
    release.refresh_from_db()
    assert release.status == ReleaseStatus.PAUSED


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [True, -1, "", "   ", 1.5, {"name": "canary"}, ["canary"]])
def test_from_stage_is_a_name_or_a_position(service, production, bad):
    release = started(service, production, zero_soak_plan())
    response = ci_client(service).post(advance_url(release), {"from_stage": bad}, format="json")
    assert response.status_code == 400
    assert "from_stage" in response.json()
    release.refresh_from_db()
    assert release.current_stage.name == "canary"


@pytest.mark.django_db
def test_a_name_two_stages_share_must_be_given_by_position(service, production):
    # A plan across environments may repeat a stage name (canary in staging, canary in prod).
    plan = zero_soak_plan("two-canaries", ("canary", "canary", "all"))
    release = started(service, production, plan)
    client = ci_client(service)
    response = client.post(advance_url(release), {"from_stage": "canary"}, format="json")
    assert response.status_code == 400
    assert "give the stage's position" in response.json()["from_stage"][0]
    assert client.post(advance_url(release), {"from_stage": 0}, format="json").status_code == 200
    assert client.post(advance_url(release), {"from_stage": 0}, format="json").status_code == 409
    release.refresh_from_db()
    assert release.current_stage.position == 1


@pytest.mark.django_db
def test_the_schema_documents_from_stage():
    schema = APIClient().get("/api/v1/schema/", {"format": "json"}).json()
    field = schema["components"]["schemas"]["Reason"]["properties"]["from_stage"]
    assert [kind["type"] for kind in field["oneOf"]] == ["string", "integer"]
    assert "409" in field["description"]


@pytest.mark.django_db(transaction=True)
def test_thirty_parallel_retried_advances_with_from_stage_advance_once(
    postgres, service, production
):
    """The incident: 30 retries of one CI advance on a zero-soak plan took the release from its
    first stage to completed. Each read the release afresh, so only from_stage can tell."""
    release = started(service, production, zero_soak_plan())
    _, key = ApiToken.issue("ci", [service])
    barrier = threading.Barrier(30)

    def call(_: int) -> int:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
            barrier.wait(timeout=30)
            body = {"from_stage": "canary", "reason": "deploy job retry"}
            return client.post(advance_url(release), body, format="json").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(30) as pool:
        codes = sorted(pool.map(call, range(30)))
    assert codes == [200] + [409] * 29
    release.refresh_from_db()
    assert (release.status, release.current_stage.name) == (ReleaseStatus.IN_PROGRESS, "quarter")
    assert release.events.filter(verb=EventVerb.ADVANCED).count() == 1

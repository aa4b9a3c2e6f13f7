"""POST /api/v1/releases/{id}/step-back/: traffic back to an earlier stage (issue 14 point 2),
and traffic/ and bucket/ following it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.core.actors import Actor
from apps.releases.models import Release
from apps.rollouts import transitions
from tests.factories import PlanFactory, make_release

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


@pytest.fixture
def at_75(service, production) -> Release:
    plan = PlanFactory(
        slug="gradual",
        stages=[(f"{p}%", p, timedelta(0), False) for p in (25, 50, 75, 100)],
    )
    release = make_release(service=service, environment=production, plan=plan, version="2.4")
    transitions.start(release, actor=SYSTEM)
    transitions.advance(release, actor=SYSTEM)
    transitions.advance(release, actor=SYSTEM)
    return release


def _step_back(api, release: Release, **body: object):
    return api.post(f"/api/v1/releases/{release.pk}/step-back/", body, format="json")


def test_step_back_from_75_to_50_and_traffic_and_buckets_follow(api, at_75):
    base = f"/api/v1/releases/{at_75.pk}"
    units = [f"org-{n}" for n in range(60)]
    before = {u: api.get(f"{base}/bucket/", {"unit": u}).json() for u in units}
    assert {b["percentage"] for b in before.values()} == {75}

    response = _step_back(api, at_75, reason="p95 regression", from_stage="75%")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["stage"], body["traffic_percentage"], body["status"]) == (
        "50%",
        50,
        "in_progress",
    )
    assert api.get(f"{base}/traffic/").json() == {
        "percentage": 50,
        "status": "in_progress",
        "stage": "50%",
    }
    at_75.refresh_from_db()
    for unit in units:
        answer = api.get(f"{base}/bucket/", {"unit": unit}).json()
        assert answer["percentage"] == 50
        assert answer["variant"] == at_75.bucket(unit)[0]
        if answer["variant"] == "treatment":  # in at 50 %: it was in at 75 % too
            assert before[unit]["variant"] == "treatment"
    assert any(
        before[u]["variant"] == "treatment"
        and api.get(f"{base}/bucket/", {"unit": u}).json()["variant"] == "control"
        for u in units
    )
    [event] = api.get(f"{base}/events/", {"verb": "stepped_back"}).json()["results"]
    assert event["actor"] == "token:ci" and event["reason"] == "p95 regression"
    assert event["data"] == {
        "from_stage": "75%",
        "to_stage": "50%",
        "traffic_percentage_before": 75,
        "traffic_percentage": 50,
    }


def test_to_stage_by_name_or_position(api, at_75):
    assert _step_back(api, at_75, reason="errors", to_stage=0).json()["stage"] == "25%"
    api.post(f"/api/v1/releases/{at_75.pk}/advance/")
    api.post(f"/api/v1/releases/{at_75.pk}/advance/")
    assert _step_back(api, at_75, reason="again", to_stage="50%").json()["stage"] == "50%"


def test_no_reason_is_a_400(api, at_75):
    response = _step_back(api, at_75)
    assert response.status_code == 400
    assert "Give a reason to step back" in response.json()["reason"][0]


@pytest.mark.parametrize(
    ("to_stage", "field", "words"),
    [
        ("100%", "to_stage", "is a later stage, not an earlier one"),
        (2, "to_stage", "is the current stage"),
        ("nope", "to_stage", "no stage 'nope'"),
        (-1, "to_stage", "Give the stage's name"),
        (True, "to_stage", "Give the stage's name"),
    ],
)
def test_a_bad_to_stage_is_a_400_naming_it(api, at_75, to_stage, field, words):
    response = _step_back(api, at_75, reason="x", to_stage=to_stage)
    assert response.status_code == 400, response.content
    assert words in response.json()[field][0]
    at_75.refresh_from_db()
    assert at_75.current_stage.name == "75%"


def test_not_allowed_now_is_a_409(api, at_75, service, production):
    first = make_release(service=service, environment=production, plan=at_75.plan, version="3")
    planned = _step_back(api, first, reason="x")
    assert planned.status_code == 409
    assert "Cannot step back a release that is planned" in planned.json()["detail"]

    transitions.rollback(at_75, actor=SYSTEM, reason="done")
    transitions.start(first, actor=SYSTEM)
    at_first = _step_back(api, first, reason="x")
    assert at_first.status_code == 409
    assert "first stage" in at_first.json()["detail"]
    stale = _step_back(api, first, reason="x", from_stage="75%")
    assert stale.status_code == 409

"""GET releases/{id}/events/: the release's story for CI, oldest first, paged, by verb, with the
breach (criterion, value, threshold) in the data of an automatic pause or rollback."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion, error_rate, push  # noqa: F401  (fixture)
from tests.factories import PlanFactory, make_release

SYSTEM = Actor.system("tests")


def _running(service, production):
    plan = PlanFactory(slug="watched", stages=[("canary", 10, timedelta(hours=24), False)])
    release = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    transitions.start(release, actor=SYSTEM, reason="pipeline 812")
    return plan, release


def test_a_rollback_by_the_tick_reads_back_with_its_criterion_value_and_threshold(
    api,
    service,
    production,
    error_rate,  # noqa: F811
):
    plan, release = _running(service, production)
    criterion(plan, error_rate, warning_threshold=0.02, critical_threshold=0.05,
              on_critical="rollback")  # fmt: skip
    push(release, error_rate, [0.09] * 3, end=timezone.now(), count=400)
    assert run_checks().rolled_back == [release.pk]

    response = api.get(f"/api/v1/releases/{release.pk}/events/", {"verb": "rolled_back"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 1
    [event] = body["results"]
    assert event["verb"] == "rolled_back" and event["stage"] == "canary"
    assert event["actor"] == "system:metric-checks" and event["actor_kind"] == "system"
    assert "error_rate > 5 %" in event["reason"]
    [breach] = event["data"]["breaches"]
    assert breach["criterion"] == "error_rate > 5 %" and breach["metric"] == "error_rate"
    assert breach["level"] == "critical"
    assert breach["value"] == 0.09 and breach["threshold"] == 0.05
    assert breach["comparator"] == ">"
    assert event["data"]["traffic_percentage_before"] == 10


def test_a_pause_by_the_tick_keeps_its_breach_and_a_person_s_has_none(
    api,
    service,
    production,
    error_rate,  # noqa: F811
):
    plan, release = _running(service, production)
    criterion(plan, error_rate, critical_threshold=0.05, on_critical="pause")
    push(release, error_rate, [0.07] * 3, end=timezone.now(), count=400)
    assert run_checks().paused == [release.pk]
    release.refresh_from_db()
    transitions.resume(release, actor=SYSTEM, reason="looked at it")
    transitions.pause(release, actor=SYSTEM, reason="by hand")

    paused = api.get(f"/api/v1/releases/{release.pk}/events/?verb=paused").json()["results"]
    assert [e["reason"] for e in paused][1] == "by hand"
    assert paused[0]["data"]["breaches"][0]["value"] == 0.07
    assert "breaches" not in paused[1]["data"]


def test_events_come_oldest_first_in_pages_and_several_verbs_filter_together(
    api, service, production
):
    _, release = _running(service, production)
    transitions.pause(release, actor=SYSTEM, reason="one")
    transitions.resume(release, actor=SYSTEM, reason="two")
    url = f"/api/v1/releases/{release.pk}/events/"

    everything = api.get(url).json()
    assert [e["verb"] for e in everything["results"]] == ["created", "started", "paused", "resumed"]
    first = api.get(url, {"limit": 2}).json()
    assert first["count"] == 4 and [e["verb"] for e in first["results"]] == ["created", "started"]
    assert first["previous"] is None and "offset=2" in first["next"]
    second = api.get(first["next"]).json()
    assert [e["verb"] for e in second["results"]] == ["paused", "resumed"]
    assert second["next"] is None
    both = api.get(url, {"verb": ["paused", "resumed"]}).json()
    assert [e["reason"] for e in both["results"]] == ["one", "two"]


def test_a_bad_verb_names_itself_and_another_service_s_token_is_refused(
    api, service, other_service, production
):
    _, release = _running(service, production)
    url = f"/api/v1/releases/{release.pk}/events/"

    bad = api.get(url, {"verb": "exploded"})
    assert bad.status_code == 400
    assert "exploded" in str(bad.json()["verb"])
    _, other_key = ApiToken.issue("billing-ci", [other_service])
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Token {other_key}")
    assert stranger.get(url).status_code == 403
    assert APIClient().get(url).status_code in (401, 403)
    assert api.get("/api/v1/releases/999999/events/").status_code == 404


def test_a_viewer_reads_the_story_in_a_fixed_number_of_queries(
    victor, service, production, django_assert_max_num_queries
):
    _, release = _running(service, production)
    for n in range(10):
        transitions.pause(release, actor=SYSTEM, reason=f"pause {n}")
        transitions.resume(release, actor=SYSTEM, reason=f"resume {n}")
    client = APIClient()
    client.force_authenticate(victor)
    with django_assert_max_num_queries(8):
        body = client.get(f"/api/v1/releases/{release.pk}/events/").json()
    assert body["count"] == 22 and body["results"][-1]["reason"] == "resume 9"

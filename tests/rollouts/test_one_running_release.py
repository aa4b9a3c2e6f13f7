"""One running release per service and environment: a second start is refused, or forced."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Release
from apps.rollouts import gate, transitions
from tests.factories import EnvironmentFactory, PlanFactory, make_release

SYSTEM = Actor.system("tests")
CHANGELIST = reverse("admin:releases_release_changelist")


@pytest.fixture
def plan(db):
    return PlanFactory(
        slug="quartered",
        stages=[
            ("canary", 10, timedelta(0), False),
            ("quarter", 25, timedelta(0), False),
            ("all", 100, timedelta(0), False),
        ],
    )


@pytest.fixture
def running(service, production, plan) -> Release:
    """2.4.0 at 25 % in production."""
    release = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    transitions.start(release, actor=SYSTEM)
    transitions.advance(release, actor=SYSTEM)
    return release


@pytest.fixture
def candidate(service, production, plan) -> Release:
    """2.5.0-rc1, planned for production too."""
    return make_release(service=service, environment=production, plan=plan, version="2.5.0-rc1")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def running_blockers(release: Release) -> list[gate.Blocker]:
    return [b for b in gate.evaluate(release).blockers if b.kind == "running_release"]


EXPECTED = (
    "Another release of AI Orchestra is running in Production: 2.4.0 (release #{pk}), "
    "in progress at stage quarter (25 %)."
)


# --- the rule, in the gate ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_gate_refuses_to_start_a_second_release_of_the_service_in_the_environment(
    running, candidate, rita_actor
):
    [blocker] = running_blockers(candidate)
    assert blocker.detail.startswith(EXPECTED.format(pk=running.pk))
    assert gate.evaluate(candidate).step == "start"
    with pytest.raises(transitions.TransitionError) as refused:
        transitions.start(candidate, actor=rita_actor)
    assert "running_release" in [b.kind for b in refused.value.blockers]
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.PLANNED
    assert not candidate.events.filter(verb=EventVerb.STARTED).exists()
    # The running release's own gate does not name itself.
    assert running_blockers(running) == []


@pytest.mark.django_db
def test_a_paused_release_still_holds_the_environment(running, candidate):
    transitions.pause(running, actor=SYSTEM, reason="Latency")
    [blocker] = running_blockers(candidate)
    assert "2.4.0" in blocker.detail and "paused at stage quarter" in blocker.detail


@pytest.mark.django_db
def test_another_environment_another_service_or_a_finished_release_do_not_hold_it(
    running, candidate, service, other_service, plan, rita_actor
):
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    in_staging = make_release(service=service, environment=staging, plan=plan, version="2.5.0")
    other = make_release(
        service=other_service, environment=running.environment, plan=plan, version="9.0"
    )
    assert running_blockers(in_staging) == []
    assert running_blockers(other) == []
    transitions.start(in_staging, actor=rita_actor)
    transitions.start(other, actor=rita_actor)

    transitions.rollback(running, actor=rita_actor, reason="Bad 2.4.0")
    assert running_blockers(candidate) == []
    transitions.start(candidate, actor=rita_actor)
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.IN_PROGRESS


# --- the API -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_start_answers_409_naming_the_running_release(api, running, candidate):
    response = api.post(f"/api/v1/releases/{candidate.pk}/start/", {}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert "The gate is red for start" in body["detail"]
    assert EXPECTED.format(pk=running.pk) in body["detail"]
    [blocker] = [b for b in body["blockers"] if b["kind"] == "running_release"]
    assert blocker["release"] == {
        "id": running.pk,
        "version": "2.4.0",
        "status": ReleaseStatus.IN_PROGRESS,
        "stage": "quarter",
        "traffic_percentage": 25,
    }
    # The gate endpoint says the same, in the same words.
    gate_body = api.get(f"/api/v1/releases/{candidate.pk}/gate/").json()
    assert gate_body["can_advance"] is False
    assert blocker in gate_body["blockers"]
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.PLANNED


@pytest.mark.django_db
def test_a_token_cannot_force_the_second_start(api, running, candidate):
    response = api.post(
        f"/api/v1/releases/{candidate.pk}/start/",
        {"force": True, "reason": "CI wants it"},
        format="json",
    )
    assert response.status_code == 403
    assert "release manager" in response.json()["detail"]
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.PLANNED


@pytest.mark.django_db
def test_a_release_manager_forces_it_with_a_reason_and_the_event_names_the_other(
    rita, running, candidate
):
    client = APIClient()
    client.force_authenticate(rita)
    url = f"/api/v1/releases/{candidate.pk}/start/"

    without_reason = client.post(url, {"force": True}, format="json")
    assert without_reason.status_code == 400
    assert "reason" in without_reason.json()

    response = client.post(url, {"force": True, "reason": "rc1 canary beside 2.4.0"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == ReleaseStatus.IN_PROGRESS
    override = candidate.events.get(verb=EventVerb.GATE_OVERRIDDEN)
    assert override.actor_user == rita
    assert override.reason == "rc1 canary beside 2.4.0"
    [named] = [b for b in override.data["blockers"] if b["kind"] == "running_release"]
    assert named["release"]["id"] == running.pk and named["release"]["version"] == "2.4.0"
    assert candidate.events.get(verb=EventVerb.STARTED).data["forced"] is True


@pytest.mark.django_db
def test_an_approver_cannot_force_it(alice, running, candidate):
    with pytest.raises(transitions.TransitionForbidden):
        transitions.start(candidate, actor=Actor.for_user(alice), force=True, reason="Please")
    response = client_for(alice).post(
        reverse("pages:transition", args=[candidate.pk]),
        {"action": "start", "reason": "Please", "force": "1"},
    )
    assert response.status_code == 403
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.PLANNED


# --- the release page and the admin ------------------------------------------------------------


@pytest.mark.django_db
def test_the_release_page_shows_the_refusal_and_lets_a_release_manager_force(
    rita, running, candidate
):
    client = client_for(rita)
    page = client.get(reverse("pages:release", args=[candidate.pk])).content.decode()
    assert EXPECTED.format(pk=running.pk) in page
    assert "Override the red gate" in page

    url = reverse("pages:transition", args=[candidate.pk])
    refused = client.post(url, {"action": "start", "reason": "ship it"})
    assert refused.status_code == 409
    html = refused.content.decode()
    box = re.search(r'<div class="error-box" role="alert" id="refusal">.*?</div>', html, re.S)[0]
    assert "The gate refuses: the release may not start now." in box
    assert EXPECTED.format(pk=running.pk) in box
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.PLANNED

    forced = client.post(url, {"action": "start", "reason": "rc1 beside 2.4.0", "force": "1"})
    assert forced.status_code == 302
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.IN_PROGRESS
    assert candidate.events.filter(verb=EventVerb.GATE_OVERRIDDEN).count() == 1


@pytest.mark.django_db
def test_the_admin_action_reports_the_refusal_and_the_force_action_starts_it(
    rita, running, candidate
):
    rita.is_staff = True
    rita.save(update_fields=["is_staff"])
    client = client_for(rita)

    def post(action: str, **extra: str):
        data = {"action": action, "_selected_action": [candidate.pk], "apply": "1", **extra}
        response = client.post(CHANGELIST, data, follow=True)
        return [str(m) for m in response.context["messages"]]

    [message] = post("start_releases", reason="")
    assert message.startswith(f"Could not start {candidate}: The gate is red for start")
    assert EXPECTED.format(pk=running.pk) in message
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.PLANNED

    [message] = post("force_advance_releases", reason="rc1 beside 2.4.0")
    assert message.startswith("Forced ahead 1 of 1 release(s)")
    candidate.refresh_from_db()
    assert candidate.status == ReleaseStatus.IN_PROGRESS
    override = candidate.events.get(verb=EventVerb.GATE_OVERRIDDEN)
    assert override.data["blockers"][0]["release"]["id"] == running.pk


# --- two starts at once ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_starts_of_two_releases_at_once_start_one(postgres, service, production, plan, rita):
    first = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    second = make_release(service=service, environment=production, plan=plan, version="2.5.0")
    barrier = threading.Barrier(2)

    def start(release: Release) -> str:
        try:
            seen = Release.objects.get(pk=release.pk)
            barrier.wait(timeout=10)
            try:
                transitions.start(seen, actor=Actor.for_user(rita), reason=seen.version)
            except transitions.TransitionError as exc:
                return "refused: " + " ".join(b.kind for b in exc.blockers)
            return "started"
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(start, [first, second]))

    assert outcomes == ["refused: running_release", "started"]
    statuses = sorted(Release.objects.values_list("status", flat=True))
    assert statuses == [ReleaseStatus.IN_PROGRESS, ReleaseStatus.PLANNED]

"""Stepping traffic back (issue 14 point 2): "reduce canary 75 → 50 → 25, monitor, then 0 if it
persists". The domain function, the admin action and the release page's button."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client

from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus, StageStatus
from apps.releases.models import Release
from apps.rollouts import inputs, transitions
from apps.rollouts.transitions import TransitionError
from tests.factories import EnvironmentFactory, PlanFactory, make_release

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def _plan():
    return PlanFactory(
        slug="gradual",
        stages=[
            ("25%", 25, timedelta(0), False),
            ("50%", 50, timedelta(0), False),
            ("75%", 75, timedelta(0), False),
            ("100%", 100, timedelta(0), False),
        ],
    )


def at_stage(release: Release, position: int, actor) -> Release:
    transitions.start(release, actor=actor)
    for _ in range(position):
        transitions.advance(release, actor=actor)
    return release


@pytest.fixture
def at_75(service, production, system_actor, clock) -> Release:
    release = make_release(service=service, environment=production, plan=_plan(), version="2.4")
    return at_stage(release, 2, system_actor)


def _statuses(release: Release) -> list[str]:
    return list(release.stages.order_by("position").values_list("status", flat=True))


def test_stepping_back_from_75_to_50_takes_traffic_to_the_previous_stage(at_75, rita_actor, clock):
    clock.shift(HOUR)
    transitions.step_back(at_75, actor=rita_actor, reason="p95 latency creeping up")

    assert (at_75.status, at_75.current_stage.name) == (ReleaseStatus.IN_PROGRESS, "50%")
    assert at_75.traffic_percentage == 50
    assert _statuses(at_75) == [
        StageStatus.PASSED,
        StageStatus.ACTIVE,
        StageStatus.PENDING,
        StageStatus.PENDING,
    ]
    half = at_75.current_stage
    # Soak counts again from now, the earlier visit does not count.
    assert (half.entered_at, half.exited_at, half.paused_for) == (T0 + HOUR, None, timedelta(0))
    assert half.soaked(T0 + HOUR) == timedelta(0)
    left = at_75.stages.get(name="75%")
    assert (left.entered_at, left.exited_at) == (None, None)
    event = at_75.events.order_by("-id").first()
    assert (event.verb, event.reason, event.actor_name) == (
        EventVerb.STEPPED_BACK,
        "p95 latency creeping up",
        "rita",
    )
    assert event.stage == half
    assert event.data == {
        "from_stage": "75%",
        "to_stage": "50%",
        "traffic_percentage_before": 75,
        "traffic_percentage": 50,
    }


def test_a_named_or_numbered_earlier_stage_and_the_stages_in_between(at_75, rita_actor):
    transitions.step_back(at_75, actor=rita_actor, reason="errors", to_stage=0)
    assert at_75.current_stage.name == "25%"
    assert _statuses(at_75) == [StageStatus.ACTIVE] + [StageStatus.PENDING] * 3

    transitions.advance(at_75, actor=rita_actor)
    transitions.advance(at_75, actor=rita_actor)
    transitions.step_back(at_75, actor=rita_actor, reason="again", to_stage="25%")
    assert at_75.traffic_percentage == 25
    assert at_75.events.order_by("-id").first().data["traffic_percentage_before"] == 75


def test_advancing_again_enters_the_stage_left_afresh(at_75, rita_actor, clock):
    transitions.step_back(at_75, actor=rita_actor, reason="latency")
    clock.shift(HOUR)
    transitions.advance(at_75, actor=rita_actor)

    again = at_75.current_stage
    assert again.name == "75%"
    assert (again.status, again.entered_at, again.exited_at) == (
        StageStatus.ACTIVE,
        T0 + HOUR,
        None,
    )
    assert again.soaked(T0 + 2 * HOUR) == HOUR


def test_a_paused_release_steps_back_paused_and_soaks_from_its_resume(at_75, rita_actor, clock):
    transitions.pause(at_75, actor=rita_actor, reason="looking")
    clock.shift(HOUR)
    transitions.step_back(at_75, actor=rita_actor, reason="take it down while we look")
    assert (at_75.status, at_75.traffic_percentage) == (ReleaseStatus.PAUSED, 50)
    clock.shift(HOUR)
    transitions.resume(at_75, actor=rita_actor)
    clock.shift(HOUR)

    at_75.current_stage.refresh_from_db()
    # Entered at +1 h, paused until +2 h: one hour of soak at +3 h, not two.
    assert at_75.current_stage.soaked(T0 + 3 * HOUR, at_75.paused_at) == HOUR


@pytest.mark.parametrize(
    ("to_stage", "words"),
    [
        ("75%", "is the current stage, not an earlier one"),
        (3, "is a later stage, not an earlier one"),
        ("eighty", "no stage 'eighty'"),
        (9, "no stage 9"),
    ],
)
def test_a_stage_that_is_not_earlier_is_refused_naming_the_problem(
    at_75, rita_actor, to_stage, words
):
    events = at_75.events.count()
    with pytest.raises(ValidationError) as exc:
        transitions.step_back(at_75, actor=rita_actor, reason="x", to_stage=to_stage)
    assert words in exc.value.message_dict["to_stage"][0]
    at_75.refresh_from_db()
    assert (at_75.current_stage.name, at_75.events.count()) == ("75%", events)


def test_at_the_first_stage_there_is_nothing_to_step_back_to(
    service, production, rita_actor, clock
):
    release = at_stage(make_release(service=service, environment=production, plan=_plan()), 0,
                       rita_actor)  # fmt: skip
    assert "step_back" not in transitions.allowed_actions(release)
    with pytest.raises(TransitionError, match="first stage, there is no earlier stage"):
        transitions.step_back(release, actor=rita_actor, reason="errors")
    assert release.current_stage.name == "25%"
    assert not release.events.filter(verb=EventVerb.STEPPED_BACK).exists()


def test_step_back_is_offered_running_and_paused_past_the_first_stage(at_75, rita_actor):
    assert "step_back" in transitions.allowed_actions(at_75)
    transitions.pause(at_75, actor=rita_actor, reason="hold")
    assert "step_back" in transitions.allowed_actions(at_75)
    planned = make_release(service=at_75.service, environment=at_75.environment, plan=at_75.plan)
    assert "step_back" not in transitions.allowed_actions(planned)
    with pytest.raises(TransitionError, match="Cannot step back a release that is planned"):
        transitions.step_back(planned, actor=rita_actor, reason="x")


def test_a_person_must_say_why(at_75, rita_actor):
    with pytest.raises(ValidationError) as exc:
        inputs.run(at_75, "step_back", actor=rita_actor, reason="  ")
    assert "Give a reason to step back" in exc.value.message_dict["reason"][0]
    assert at_75.current_stage.name == "75%"


def test_the_stage_the_caller_saw_guards_a_retried_step_back(at_75, rita_actor):
    transitions.step_back(at_75, actor=rita_actor, reason="latency", from_stage="75%")
    with pytest.raises(TransitionError, match="not at stage '75%' any more"):
        transitions.step_back(at_75, actor=rita_actor, reason="latency", from_stage="75%")
    assert at_75.current_stage.name == "50%"
    assert at_75.events.filter(verb=EventVerb.STEPPED_BACK).count() == 1


def test_a_step_back_stays_in_the_environment_the_release_runs_in(service, production, rita_actor):
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    plan = PlanFactory(stages=[("staging", 100, timedelta(0), False, staging),
                               ("canary", 10, timedelta(0), False),
                               ("half", 50, timedelta(0), False)])  # fmt: skip
    release = at_stage(make_release(service=service, environment=production, plan=plan), 1,
                       rita_actor)  # fmt: skip
    assert "step_back" not in transitions.allowed_actions(release)
    with pytest.raises(ValidationError, match="runs in Staging"):
        transitions.step_back(release, actor=rita_actor, reason="x", to_stage="staging")
    transitions.advance(release, actor=rita_actor)
    transitions.step_back(release, actor=rita_actor, reason="errors")
    assert release.current_stage.name == "canary"


def _point(release: Release, unit: str) -> int:
    digest = hashlib.sha256(f"{release.pk}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def test_buckets_stay_deterministic_units_above_the_lower_percentage_leave(at_75, rita_actor):
    units = [f"user-{n}" for n in range(400)]
    before = {unit: at_75.bucket(unit)[0] for unit in units}
    transitions.step_back(at_75, actor=rita_actor, reason="latency")
    after = {unit: at_75.bucket(unit) for unit in units}

    assert {percentage for _, percentage in after.values()} == {50}
    stayed = [u for u in units if _point(at_75, u) < 5000]
    left = [u for u in units if 5000 <= _point(at_75, u) < 7500]
    assert stayed and left
    assert all(before[u] == after[u][0] == "treatment" for u in stayed)
    assert all(before[u] == "treatment" and after[u][0] == "control" for u in left)
    assert all(after[u][0] == "control" for u in units if _point(at_75, u) >= 5000)


def test_the_service_is_emailed_from_and_to_which_percentage(
    at_75, rita_actor, django_capture_on_commit_callbacks
):
    at_75.service.notification_emails = "oncall@example.com"
    at_75.service.save()
    with django_capture_on_commit_callbacks(execute=True):
        transitions.step_back(at_75, actor=rita_actor, reason="latency up")

    [message] = mail.outbox
    assert message.subject.endswith(": stepped back to 50 %")
    assert "Traffic stepped back from 75 % to 50 %." in message.body
    assert "Reason: latency up" in message.body
    assert "Traffic stepped back from 75 %" in message.alternatives[0][0]


# --- the admin action ----------------------------------------------------------------------


def _admin(rita) -> Client:
    rita.is_staff = True
    rita.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(rita)
    return client


def test_the_admin_action_asks_a_reason_and_an_optional_earlier_stage(at_75, rita):
    client = _admin(rita)
    selected = {"action": "step_back_releases", "_selected_action": [at_75.pk]}

    page = client.post("/admin/releases/release/", selected)
    assert page.status_code == 200
    body = page.content.decode()
    assert "Step back to" in body and "The previous stage" in body
    assert '<option value="0">1. 25%</option>' in body
    assert '<option value="2">' not in body  # the current stage is not earlier

    missing = client.post("/admin/releases/release/", {**selected, "apply": "1", "reason": ""})
    assert missing.status_code == 200  # the reason page again, nothing done
    at_75.refresh_from_db()
    assert at_75.current_stage.name == "75%"

    done = client.post("/admin/releases/release/", {**selected, "apply": "1", "reason": "p95"})
    assert done.status_code == 302
    at_75.refresh_from_db()
    assert at_75.current_stage.name == "50%"

    client.post("/admin/releases/release/",
                {**selected, "apply": "1", "reason": "still slow", "to_stage": "0"})  # fmt: skip
    at_75.refresh_from_db()
    assert at_75.current_stage.name == "25%"
    reasons = list(
        at_75.events.filter(verb=EventVerb.STEPPED_BACK).values_list("reason", flat=True)
    )
    assert sorted(reasons) == ["p95", "still slow"]


def test_the_admin_action_reports_a_release_at_its_first_stage(service, production, rita):
    release = at_stage(make_release(service=service, environment=production, plan=_plan()), 0,
                       Actor.system("tests"))  # fmt: skip
    client = _admin(rita)
    response = client.post(
        "/admin/releases/release/",
        {"action": "step_back_releases", "_selected_action": [release.pk], "apply": "1",
         "reason": "errors"},
        follow=True,
    )  # fmt: skip
    assert "Could not step back" in response.content.decode()
    assert "first stage" in response.content.decode()


# --- the release page ----------------------------------------------------------------------


def _page_client(rita) -> Client:
    client = Client()
    client.force_login(rita)
    return client


def test_the_page_offers_step_back_with_the_earlier_stages(at_75, rita):
    body = _page_client(rita).get(f"/releases/{at_75.pk}/").content.decode()
    assert 'id="action-step_back"' in body
    assert "Step back from 75 %" in body
    assert '<option value="1">50 %, the previous stage</option>' in body
    assert '<option value="0">25 %</option>' in body


def test_the_page_offers_no_step_back_at_the_first_stage(service, production, rita):
    release = at_stage(make_release(service=service, environment=production, plan=_plan()), 0,
                       Actor.system("tests"))  # fmt: skip
    body = _page_client(rita).get(f"/releases/{release.pk}/").content.decode()
    assert 'id="action-pause"' in body
    assert 'id="action-step_back"' not in body


def test_posting_the_page_form_steps_back_and_the_timeline_says_so(at_75, rita):
    client = _page_client(rita)
    seen = f"{at_75.status}:{at_75.current_stage_id}"
    url = f"/releases/{at_75.pk}/transition/"

    refused = client.post(url, {"action": "step_back", "reason": "", "seen": seen})
    assert refused.status_code == 400
    assert "Give a reason to step back" in refused.content.decode()

    done = client.post(
        url, {"action": "step_back", "reason": "latency", "seen": seen, "to_stage": "1"}
    )
    assert done.status_code == 302
    at_75.refresh_from_db()
    assert (at_75.current_stage.name, at_75.traffic_percentage) == ("50%", 50)
    page = client.get(f"/releases/{at_75.pk}/").content.decode()
    assert "<strong>Stepped back</strong> from 75 % to 50 %" in page
    assert "(75% to 50%)" not in page  # a stage named by its traffic is said once

    later = client.post(url, {"action": "step_back", "reason": "x",
                              "seen": f"{at_75.status}:{at_75.current_stage_id}",
                              "to_stage": "3"})  # fmt: skip
    assert later.status_code == 400
    assert "is a later stage, not an earlier one" in later.content.decode()

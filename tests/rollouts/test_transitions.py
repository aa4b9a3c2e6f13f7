"""The transitions module: allowed moves, stamps, events, traffic %, permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError

from apps.core import stamps
from apps.core.actors import Actor
from apps.outbox.choices import DeliveryStatus
from apps.outbox.models import Message
from apps.releases.choices import EventVerb, ReleaseStatus, StageStatus
from apps.releases.models import Event
from apps.rollouts import transitions
from apps.rollouts.transitions import TransitionError, TransitionForbidden
from tests.factories import PlanFactory, make_release

pytestmark = pytest.mark.django_db

T0 = "2026-11-02 09:00:00+00:00"


def events_of(release) -> list[Event]:
    return list(release.events.order_by("id"))


def test_every_transition_leaves_one_event_naming_its_actor(service, production, rita_actor):
    release = make_release(service=service, environment=production)
    ci = Actor.for_token(7, "github", frozenset({service.pk}))
    steps = [
        (transitions.start, rita_actor, EventVerb.STARTED),
        (transitions.pause, ci, EventVerb.PAUSED),
        (transitions.resume, rita_actor, EventVerb.RESUMED),
        (transitions.advance, ci, EventVerb.ADVANCED),
        (transitions.rollback, Actor.system("tick"), EventVerb.ROLLED_BACK),
    ]
    for func, actor, verb in steps:
        before = release.events.count()
        func(release, actor=actor, reason=f"because {verb}")
        assert release.events.count() == before + 1
        last = release.events.order_by("-id").first()
        assert (last.verb, last.actor_name, last.reason) == (verb, actor.name, f"because {verb}")
        assert last.actor_kind == actor.kind
    assert events_of(release)[1].actor_user == rita_actor.user

    planned = make_release(service=service, environment=production)
    transitions.abort(planned, actor=rita_actor, reason="superseded")
    assert planned.events.order_by("-id").first().verb == EventVerb.ABORTED


def test_traffic_percentage_for_every_status(service, production, rita_actor):
    release = make_release(service=service, environment=production)
    assert (release.status, release.traffic_percentage) == (ReleaseStatus.PLANNED, 0)
    transitions.start(release, actor=rita_actor)
    assert (release.status, release.traffic_percentage) == (ReleaseStatus.IN_PROGRESS, 5)
    transitions.advance(release, actor=rita_actor)
    assert release.traffic_percentage == 25
    transitions.pause(release, actor=rita_actor)
    assert (release.status, release.traffic_percentage) == (ReleaseStatus.PAUSED, 25)
    transitions.resume(release, actor=rita_actor)
    transitions.advance(release, actor=rita_actor)
    transitions.advance(release, actor=rita_actor)
    assert release.traffic_percentage == 100
    assert release.status == ReleaseStatus.IN_PROGRESS
    transitions.advance(release, actor=rita_actor)  # past the last stage
    assert (release.status, release.traffic_percentage) == (ReleaseStatus.COMPLETED, 100)
    assert release.events.order_by("-id").first().verb == EventVerb.COMPLETED
    assert list(release.stages.values_list("status", flat=True)) == [StageStatus.PASSED] * 4

    rolled = make_release(service=service, environment=production)
    transitions.start(rolled, actor=rita_actor)
    transitions.rollback(rolled, actor=rita_actor, reason="error rate 6%")
    assert (rolled.status, rolled.traffic_percentage) == (ReleaseStatus.ROLLED_BACK, 0)
    statuses = list(rolled.stages.values_list("status", flat=True))
    assert statuses == [StageStatus.ROLLED_BACK] + [StageStatus.SKIPPED] * 3

    aborted = make_release(service=service, environment=production)
    transitions.abort(aborted, actor=rita_actor)
    assert (aborted.status, aborted.traffic_percentage) == (ReleaseStatus.ABORTED, 0)


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ([], "advance"),
        ([], "pause"),
        ([], "resume"),
        ([], "rollback"),
        (["start"], "start"),
        (["start"], "abort"),
        (["start"], "resume"),
        (["start", "pause"], "advance"),
        (["start", "pause"], "pause"),
        (["start", "rollback"], "resume"),
        (["abort"], "start"),
    ],
)
def test_transitions_not_allowed_now_refuse_and_change_nothing(
    service, production, rita_actor, setup, action
):
    release = make_release(service=service, environment=production)
    for step in setup:
        transitions.ACTIONS[step](release, actor=rita_actor)
    status, events = release.status, release.events.count()
    with pytest.raises(TransitionError) as exc:
        transitions.ACTIONS[action](release, actor=rita_actor)
    assert f"Cannot {action}" in exc.value.message or "paused" in exc.value.message
    release.refresh_from_db()
    assert (release.status, release.events.count()) == (status, events)


def test_stale_view_is_refused_instead_of_acting_twice(service, production, rita_actor):
    release = make_release(service=service, environment=production)
    transitions.start(release, actor=rita_actor)
    seen_by_ci = type(release).objects.get(pk=release.pk)
    transitions.advance(release, actor=rita_actor)  # a person advances first
    with pytest.raises(TransitionError, match="changed meanwhile"):
        transitions.advance(seen_by_ci, actor=rita_actor)
    release.refresh_from_db()
    assert release.current_stage.name == "quarter"
    assert release.events.filter(verb=EventVerb.ADVANCED).count() == 1


def test_soak_blocks_advance_and_pause_time_does_not_count(service, production, rita_actor):
    plan = PlanFactory(
        stages=[("canary", 10, timedelta(hours=24), False), ("full", 100, timedelta(0), False)]
    )
    release = make_release(service=service, environment=production, plan=plan)
    with time_machine.travel(T0, tick=False) as clock:
        transitions.start(release, actor=rita_actor)
        clock.shift(timedelta(hours=10))
        with pytest.raises(TransitionError) as exc:
            transitions.advance(release, actor=rita_actor)
        assert [b.kind for b in exc.value.blockers] == ["soak"]
        assert "14h 00m remaining" in exc.value.blockers[0].detail
        transitions.pause(release, actor=rita_actor)
        clock.shift(timedelta(hours=20))  # paused: the soak clock stops
        transitions.resume(release, actor=rita_actor)
        clock.shift(timedelta(hours=13))
        with pytest.raises(TransitionError, match="1h 00m remaining"):
            transitions.advance(release, actor=rita_actor)
        clock.shift(timedelta(hours=1))
        transitions.advance(release, actor=rita_actor)
    assert release.current_stage.name == "full"


def test_force_past_a_red_gate_needs_a_release_manager_and_a_reason(
    service, production, rita_actor, alice
):
    plan = PlanFactory(
        stages=[("canary", 10, timedelta(hours=24), False), ("full", 100, timedelta(0), False)]
    )
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=rita_actor)
    ci = Actor.for_token(1, "ci", frozenset({service.pk}))
    with pytest.raises(TransitionForbidden):
        transitions.advance(release, actor=ci, force=True, reason="hurry")
    with pytest.raises(TransitionForbidden):
        transitions.advance(release, actor=Actor.for_user(alice), force=True, reason="hurry")
    with pytest.raises(ValidationError):
        transitions.advance(release, actor=rita_actor, force=True, reason="  ")
    transitions.advance(release, actor=rita_actor, force=True, reason="hotfix, CTO approved")
    override, advanced = release.events.order_by("-id")[:2][::-1]
    assert override.verb == EventVerb.GATE_OVERRIDDEN
    assert override.data["blockers"][0]["kind"] == "soak"
    assert override.reason == "hotfix, CTO approved"
    assert advanced.verb == EventVerb.ADVANCED and advanced.data["forced"] is True


def test_people_need_the_operate_permission_and_tokens_their_service(
    service, other_service, production, victor, rita_actor
):
    release = make_release(service=service, environment=production)
    with pytest.raises(TransitionForbidden):
        transitions.start(release, actor=Actor.for_user(victor))
    foreign = Actor.for_token(3, "billing-ci", frozenset({other_service.pk}))
    with pytest.raises(TransitionForbidden, match="may not act on service"):
        transitions.start(release, actor=foreign)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.PLANNED


def test_notifications_are_sent_after_commit(
    service, production, rita_actor, django_capture_on_commit_callbacks
):
    service.notification_emails = "release-team@example.com, oncall@example.com"
    service.save()
    release = make_release(service=service, environment=production)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        transitions.start(release, actor=rita_actor, reason="go")
    assert mail.outbox == []  # nothing leaves before the transaction commits
    # The messages are rows of the transition's transaction, queued once it commits.
    assert Message.objects.filter(status=DeliveryStatus.PENDING).count() == 2
    # The outbox's queueing, then (where the cache is Redis) the API copies' stamps of the
    # verdict marked due, and the kept gate verdict's recompute (apps/core/stamps.py,
    # apps/rollouts/verdicts.py).
    assert len(callbacks) == (3 if stamps.shared() is not None else 2)
    callbacks[0]()
    # One email per address: a retry after one address failed never reaches the other twice.
    assert [m.to for m in mail.outbox] == [["release-team@example.com"], ["oncall@example.com"]]
    message = mail.outbox[0]
    assert "started (canary)" in message.subject
    assert "Traffic: 5 %" in message.body and "by rita" in message.body
    html = message.alternatives[0][0]
    assert "<strong>Started</strong>" in html and "5 %" in html


def test_events_are_append_only(service, production, rita_actor):
    release = make_release(service=service, environment=production)
    event = release.events.get()
    event.reason = "rewritten"
    with pytest.raises(ValidationError):
        event.save()
    with pytest.raises(ValidationError):
        event.delete()

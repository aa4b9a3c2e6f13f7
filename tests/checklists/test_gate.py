"""Checklists hold the gate: start waits for pre-deployment items, a stage's exit for its own."""

from __future__ import annotations

import pytest

from apps.checklists.choices import ChecklistKind, ItemState
from apps.checklists.models import Checklist, ChecklistItem
from apps.checklists.services import ChecklistError, ChecklistForbidden, set_item_state
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import gate, transitions
from apps.rollouts.transitions import TransitionError
from tests.factories import PlanFactory, make_release

from .helpers import link, make_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(db):
    """canary → quarter → half → full with pre-deployment, canary-exit and post-deployment lists."""
    plan = PlanFactory(slug="checklisted")
    pre = make_template(
        "Pre-deployment",
        sections={
            "Code": [("All tests pass", "tests"), ("Coverage > 80%", "coverage"), "Code review"],
            "Ops": [
                "Runbook prepared",
                "Team notified",
                ("Status page updated", "", False),  # optional: never holds the gate
            ],
        },
    )
    canary_exit = make_template(
        "Canary exit", ChecklistKind.STAGE_EXIT, {"Canary": ["Error rate under 1%"]}
    )
    post = make_template(
        "24-hour check", ChecklistKind.POST_DEPLOYMENT, {"After": [("Smoke tests pass", "smoke")]}
    )
    link(plan, pre)
    link(plan, canary_exit, stage="canary")
    link(plan, post)
    return plan


def ci_for(release) -> Actor:
    """The release's CI, as its API token acts: automated items are its to tick."""
    return Actor.for_token(0, "ci", frozenset({release.service_id}))


def tick_required(checklist: Checklist, actor) -> None:
    """Tick the open required items: manual ones as `actor`, automated ones as CI reports them."""
    ci = ci_for(checklist.release)
    for item in checklist.items.filter(required=True, state=ItemState.OPEN):
        set_item_state(item, done=True, actor=ci if item.is_automated else actor)


def test_start_is_refused_with_a_checklist_blocker_until_required_items_are_done(
    plan, service, production, rita_actor
) -> None:
    release = make_release(service=service, environment=production, plan=plan)
    pre = release.checklists.get(kind=ChecklistKind.PRE_DEPLOYMENT)

    verdict = gate.evaluate(release)
    (blocker,) = [b for b in verdict.blockers if b.kind == "checklist"]
    assert blocker.detail == (
        "Checklist 'Pre-deployment' (0/6 done) has 5 required items open: All tests pass; "
        "Coverage > 80%; Code review; and 2 more."
    )
    with pytest.raises(TransitionError) as refused:
        transitions.start(release, actor=rita_actor)
    assert "checklist" in [b.kind for b in refused.value.blockers]
    assert release.status == ReleaseStatus.PLANNED

    items = list(pre.items.order_by("position"))
    for item in items[:4]:
        set_item_state(item, done=True, actor=ci_for(release) if item.key else rita_actor)
    (blocker,) = gate.evaluate(release).blockers
    assert blocker.detail == (
        "Checklist 'Pre-deployment' (4/6 done) has 1 required item open: Team notified."
    )
    with pytest.raises(TransitionError):
        transitions.start(release, actor=rita_actor)

    set_item_state(items[4], done=True, actor=rita_actor)  # the optional one stays open
    assert gate.evaluate(release).can_advance
    transitions.start(release, actor=rita_actor)
    assert release.status == ReleaseStatus.IN_PROGRESS


def test_a_stage_exit_checklist_holds_only_its_own_stage(
    plan, service, production, rita_actor
) -> None:
    release = make_release(service=service, environment=production, plan=plan)
    tick_required(release.checklists.get(kind=ChecklistKind.PRE_DEPLOYMENT), rita_actor)
    transitions.start(release, actor=rita_actor)

    canary_exit = release.checklists.get(kind=ChecklistKind.STAGE_EXIT)
    assert canary_exit.stage.name == "canary"
    verdict = gate.evaluate(release)
    assert (verdict.step, [b.detail for b in verdict.blockers]) == (
        "advance",
        ["Checklist 'Canary exit' (0/1 done) has 1 required item open: Error rate under 1%."],
    )
    with pytest.raises(TransitionError, match="Error rate under 1%"):
        transitions.advance(release, actor=rita_actor)
    assert release.current_stage.name == "canary"

    # Reopening a pre-deployment item once started holds nothing: start is behind us.
    pre_item = release.checklists.get(kind=ChecklistKind.PRE_DEPLOYMENT).items.first()
    set_item_state(pre_item, done=False, actor=rita_actor)

    tick_required(canary_exit, rita_actor)
    transitions.advance(release, actor=rita_actor)
    assert release.current_stage.name == "quarter"
    assert gate.evaluate(release).can_advance  # no checklist at the quarter stage's exit


def test_the_last_stage_exit_gates_completion(service, production, rita_actor) -> None:
    plan = PlanFactory(slug="short")
    link(
        plan, make_template("Full exit", ChecklistKind.STAGE_EXIT, {"S": ["Sign the log"]}), "full"
    )
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=rita_actor)
    for _ in range(3):
        transitions.advance(release, actor=rita_actor)
    verdict = gate.evaluate(release)
    assert verdict.step == "complete" and [b.kind for b in verdict.blockers] == ["checklist"]
    with pytest.raises(TransitionError):
        transitions.advance(release, actor=rita_actor)
    tick_required(release.checklists.get(), rita_actor)
    transitions.advance(release, actor=rita_actor)
    assert release.status == ReleaseStatus.COMPLETED


def test_a_release_manager_may_force_past_a_checklist_recording_it(
    plan, service, production, rita_actor
) -> None:
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=rita_actor, force=True, reason="hotfix, CI is down")
    override = release.events.get(verb=EventVerb.GATE_OVERRIDDEN)
    assert [b["kind"] for b in override.data["blockers"]] == ["checklist"]


def test_post_deployment_checklists_open_when_the_release_completes(
    plan, service, production, rita_actor
) -> None:
    release = make_release(service=service, environment=production, plan=plan)
    post = release.checklists.get(kind=ChecklistKind.POST_DEPLOYMENT)
    assert post.opened_at is None
    with pytest.raises(ChecklistError, match="opens when the release completes"):
        set_item_state(post.items.get(), done=True, actor=ci_for(release))

    for checklist in release.checklists.exclude(kind=ChecklistKind.POST_DEPLOYMENT):
        tick_required(checklist, rita_actor)
    transitions.start(release, actor=rita_actor)
    for _ in range(4):
        transitions.advance(release, actor=rita_actor)
    assert release.status == ReleaseStatus.COMPLETED

    post.refresh_from_db()
    assert post.opened_at == release.finished_at
    opened = release.events.get(verb=EventVerb.CHECKLIST_OPENED)
    assert opened.data == {"checklist": "24-hour check", "kind": "post_deployment", "items": 1}
    assert opened.actor_name == "rita"
    set_item_state(post.items.get(), done=True, actor=ci_for(release))
    assert post.items.get().state == ItemState.DONE
    assert gate.evaluate(release).step == ""  # a finished release: post-deployment gates nothing


def test_every_tick_and_untick_is_recorded_with_its_actor(
    plan, service, production, rita_actor, alice
) -> None:
    release = make_release(service=service, environment=production, plan=plan)
    item = ChecklistItem.objects.get(checklist__release=release, text="Code review")
    set_item_state(
        item, done=True, actor=rita_actor, comment="PR #12", evidence_url="https://git/pr/12"
    )
    set_item_state(item, done=False, actor=Actor.for_user(alice), comment="found a bug")
    assert (item.state, item.actor_name, item.comment, item.evidence_url) == (
        ItemState.OPEN,
        "alice",
        "found a bug",
        "",
    )
    history = list(item.history.order_by("id"))
    assert [(h.previous_state, h.state, h.actor_name, h.comment) for h in history] == [
        ("open", "done", "rita", "PR #12"),
        ("done", "open", "alice", "found a bug"),
    ]
    assert history[0].evidence_url == "https://git/pr/12"
    assert history[1].actor_user == alice
    events = release.events.filter(verb__startswith="checklist_item").order_by("id")
    assert [(e.verb, e.actor_name, e.reason) for e in events] == [
        (EventVerb.CHECKLIST_ITEM_DONE, "rita", "PR #12"),
        (EventVerb.CHECKLIST_ITEM_REOPENED, "alice", "found a bug"),
    ]


def test_a_viewer_cannot_tick(plan, service, production, victor) -> None:
    release = make_release(service=service, environment=production, plan=plan)
    item = ChecklistItem.objects.filter(checklist__release=release).first()
    with pytest.raises(ChecklistForbidden, match="victor may not tick"):
        set_item_state(item, done=True, actor=Actor.for_user(victor))
    assert item.history.count() == 0


def test_a_person_cannot_tick_an_automated_item_but_may_reopen_it(
    plan, service, production, rita_actor
) -> None:
    release = make_release(service=service, environment=production, plan=plan)
    tests_item = ChecklistItem.objects.get(checklist__release=release, key="tests")
    with pytest.raises(ChecklistForbidden, match="'All tests pass' is automated: CI ticks it"):
        set_item_state(tests_item, done=True, actor=rita_actor, comment="I ran them locally")
    tests_item.refresh_from_db()
    assert tests_item.state == ItemState.OPEN and tests_item.history.count() == 0

    set_item_state(tests_item, done=True, actor=ci_for(release), evidence_url="https://ci/7")
    # Reopening asks CI to report again: a person may do that.
    set_item_state(tests_item, done=False, actor=rita_actor, comment="flaky run")
    assert [(h.state, h.actor_name) for h in tests_item.history.order_by("id")] == [
        ("done", "token:ci"),
        ("open", "rita"),
    ]

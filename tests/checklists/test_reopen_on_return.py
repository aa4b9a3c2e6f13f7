"""A step back or a send-back runs stages again, so their exit checklists are checked again:
the items ticked on leaving them the first time are unticked, with the step named in each item's
history and on the timeline, and the gate waits for them; stages the release never ran keep
their ticks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client

from apps.checklists import services as checklists
from apps.checklists.choices import ChecklistKind, ItemState
from apps.checklists.models import ChecklistItem
from apps.core.actors import Actor
from apps.releases.choices import BlockerKind, EventVerb
from apps.rollouts import gate, transitions
from apps.rollouts.promotion import change_artifact
from tests.factories import EnvironmentFactory, PlanFactory, make_release

from .helpers import link, make_template

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
OLD, NEW = "a1b2c3d4e5f6", "0f9e8d7c6b5a"


def exit_checklist(plan, stage: str, *items: str) -> None:
    name = f"{stage.capitalize()} exit"
    link(plan, make_template(name, ChecklistKind.STAGE_EXIT, {stage: list(items)}), stage=stage)


def state(release, text: str) -> str:
    return ChecklistItem.objects.get(checklist__release=release, text=text).state


def tick(release, rita_actor, *texts: str) -> None:
    for text in texts:
        item = ChecklistItem.objects.get(checklist__release=release, text=text)
        checklists.set_item_state(item, done=True, actor=rita_actor, comment="seen on Grafana")


@pytest.fixture
def plan(db):
    zero = timedelta(0)
    plan = PlanFactory(
        slug="three-steps",
        stages=[("canary", 5, zero, False), ("half", 50, zero, False), ("full", 100, zero, False)],
    )
    exit_checklist(plan, "canary", "Error rate below 1 % at 5 %", "p95 latency flat")
    exit_checklist(plan, "half", "Support saw no new tickets")
    exit_checklist(plan, "full", "Status page updated")
    return plan


@pytest.fixture
def release(plan, service, production, rita_actor, run):
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=SYSTEM)
    tick(release, rita_actor, "Error rate below 1 % at 5 %", "p95 latency flat")
    transitions.advance(release, actor=SYSTEM)  # to half: the canary exit was all done
    tick(release, rita_actor, "Support saw no new tickets")
    tick(release, rita_actor, "Status page updated")  # ahead of time, for a stage not yet run
    return release


def test_a_step_back_reopens_the_exit_checklists_of_the_stages_it_runs_again(
    release, rita, rita_actor, run
):
    release.service.notification_emails = "release-team@example.com"
    release.service.save()
    run(transitions.step_back, release, actor=rita_actor, reason="error rate 1.8 %")

    assert release.current_stage.name == "canary"
    assert state(release, "Error rate below 1 % at 5 %") == ItemState.OPEN
    assert state(release, "p95 latency flat") == ItemState.OPEN
    assert state(release, "Support saw no new tickets") == ItemState.OPEN  # the stage left
    assert state(release, "Status page updated") == ItemState.DONE  # never ran: kept

    item = ChecklistItem.objects.get(text="p95 latency flat")
    assert (item.actor_name, item.comment) == (
        "rita",
        "Stepped back to canary (5 %): checked again before leaving it.",
    )
    # The history keeps the first tick, and who reopened it and why.
    assert [(c.state, c.actor_name, c.comment) for c in item.history.all()] == [
        ("open", "rita", "Stepped back to canary (5 %): checked again before leaving it."),
        ("done", "rita", "seen on Grafana"),
    ]
    reopened = release.events.filter(verb=EventVerb.CHECKLIST_ITEM_REOPENED)
    assert sorted(e.data["item"] for e in reopened) == [
        "Error rate below 1 % at 5 %",
        "Support saw no new tickets",
        "p95 latency flat",
    ]
    stepped = release.events.get(verb=EventVerb.STEPPED_BACK)
    assert stepped.data["reopened"] == [
        {"checklist": "Canary exit", "stage": "canary", "items": 2},
        {"checklist": "Half exit", "stage": "half", "items": 1},
    ]

    # The gate waits for the canary exit again, and says so; the kept verdict agrees.
    verdict = gate.evaluate(release)
    assert [b.kind for b in verdict.blockers] == [BlockerKind.CHECKLIST]
    assert "'Canary exit' (0/2 done)" in verdict.blockers[0].detail
    assert release.kept_verdict.payload["can_advance"] is False

    # What the people told and the timeline's readers see.
    email = next(m for m in mail.outbox if "Stepped back" in m.body)
    assert email.subject.endswith(": stepped back to canary (5 %)")
    assert "Traffic stepped back from half (50 %) to canary (5 %)." in email.body
    assert 'Checklist "Canary exit" (canary) reopened: 2 items ticked before' in email.body
    assert (
        "Checklist <strong>Canary exit</strong> (canary) reopened: 2 items"
        in (email.alternatives[0][0])
    )
    page = Client()
    page.force_login(rita)
    html = page.get(f"/releases/{release.pk}/").content.decode()
    assert "Checklist “Half exit” (half) reopened: 1 item ticked before to be checked again." in (
        html
    )
    assert "from half (50 %) to canary (5 %)" in html


def test_after_the_step_back_the_release_advances_once_the_items_are_ticked_again(
    release, rita_actor, run
):
    run(transitions.step_back, release, actor=rita_actor)
    with pytest.raises(transitions.TransitionError, match="Canary exit"):
        transitions.advance(release, actor=SYSTEM)
    tick(release, rita_actor, "Error rate below 1 % at 5 %", "p95 latency flat")
    transitions.advance(release, actor=SYSTEM)
    assert release.current_stage.name == "half"


def test_a_step_back_with_nothing_ticked_records_no_reopening(
    plan, service, production, rita_actor
):
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=SYSTEM)
    transitions.advance(release, actor=rita_actor, force=True, reason="exit checked by phone")
    transitions.step_back(release, actor=rita_actor)
    assert "reopened" not in release.events.get(verb=EventVerb.STEPPED_BACK).data
    assert not release.events.filter(verb=EventVerb.CHECKLIST_ITEM_REOPENED).exists()


def test_a_send_back_reopens_the_earlier_environments_exits_for_the_new_commit(
    service, production, rita_actor, run
):
    staging = EnvironmentFactory(slug="staging", name="Staging", is_production=False, order=10)
    zero = timedelta(0)
    plan = PlanFactory(
        slug="staging-then-production",
        stages=[
            ("staging", 100, zero, False, staging),
            ("canary", 5, zero, False),
            ("full", 100, zero, False),
        ],
    )
    exit_checklist(plan, "staging", "Integration suite green on staging")
    exit_checklist(plan, "canary", "Error rate below 1 % at 5 %")
    release = make_release(
        service=service, environment=production, plan=plan, commit_sha=OLD, version="4.0.0"
    )
    transitions.start(release, actor=SYSTEM)
    tick(release, rita_actor, "Integration suite green on staging")
    transitions.advance(release, actor=SYSTEM)  # into production, canary
    tick(release, rita_actor, "Error rate below 1 % at 5 %")

    release, _ = run(
        change_artifact, release, commit_sha=NEW, actor=rita_actor, reason="security patch"
    )

    assert release.current_stage.name == "staging"
    assert state(release, "Integration suite green on staging") == ItemState.OPEN
    assert state(release, "Error rate below 1 % at 5 %") == ItemState.OPEN
    item = ChecklistItem.objects.get(text="Integration suite green on staging")
    assert item.comment == f"Sent back to staging (100 %): checked again for commit {NEW}."
    sent = release.events.get(verb=EventVerb.SENT_BACK)
    assert sent.data["reopened"] == [
        {"checklist": "Staging exit", "stage": "staging", "items": 1},
        {"checklist": "Canary exit", "stage": "canary", "items": 1},
    ]
    assert [b.kind for b in gate.evaluate(release).blockers] == [BlockerKind.CHECKLIST]

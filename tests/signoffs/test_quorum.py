"""Quorum rules decide the gate: one from each group, N in all; a no-go blocks until withdrawn."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import gate, transitions
from apps.rollouts.transitions import TransitionError
from apps.signoffs import services
from apps.signoffs.choices import Decision, QuorumMode
from tests.factories import make_release

from .conftest import EM, ONCALL, PRODUCT, add_rule, member

pytestmark = pytest.mark.django_db

GO, NO_GO = Decision.GO, Decision.NO_GO
T0 = "2026-11-02 09:00:00+00:00"


def kinds(release) -> list[str]:
    return [b.kind for b in gate.evaluate(release).blockers]


def details(release) -> str:
    return " | ".join(b.detail for b in gate.evaluate(release).blockers)


def test_one_from_each_group_names_the_groups_still_needed(running, erin, paul, rita_actor):
    assert kinds(running) == ["signoff"]
    assert "a go from Engineering managers, Product" in details(running)
    with pytest.raises(TransitionError) as refused:
        transitions.advance(running, actor=rita_actor)
    assert [b.kind for b in refused.value.blockers] == ["signoff"]

    services.sign(running, user=erin, decision=GO)
    assert "Sign-off needed for leaving stage canary: a go from Product (" in details(running)

    services.sign(running, user=paul, decision=GO, comment="metrics look fine")
    assert gate.evaluate(running).can_advance
    transitions.advance(running, actor=rita_actor)
    assert running.current_stage.name == "half"


def test_a_person_in_two_groups_covers_only_one_of_them(running, groups, paul):
    both = member("bea", groups[EM], groups[PRODUCT])
    services.sign(running, user=both, decision=GO)
    assert kinds(running) == ["signoff"]
    assert "a go from" in details(running)
    services.sign(running, user=paul, decision=GO)  # Bea now covers EM, Paul Product
    assert gate.evaluate(running).can_advance


def test_n_approvals_in_all_count_distinct_members(plan, groups, service, production, olga):
    add_rule(plan, "canary", [groups[ONCALL], groups[EM]], quorum=QuorumMode.COUNT, approvals=2)
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=Actor.system("tests"))
    assert "2 more gos from members of Engineering managers, On-call" in details(release)

    services.sign(release, user=olga, decision=GO)
    services.sign(release, user=olga, decision=GO, comment="again")  # the same person twice
    assert "1 more go from" in details(release)

    services.sign(release, user=member("otto", groups[ONCALL]), decision=GO)
    assert gate.evaluate(release).can_advance


def test_a_no_go_blocks_naming_signer_and_comment_until_withdrawn(running, erin, paul, olga):
    services.sign(running, user=erin, decision=GO)
    services.sign(running, user=paul, decision=NO_GO, comment="Support queue is on fire")
    assert kinds(running) == ["no_go", "signoff"]
    assert "No-go from paul on leaving stage canary: Support queue is on fire" in details(running)

    services.withdraw(running, user=paul)
    assert kinds(running) == ["signoff"]  # the withdrawn no-go no longer blocks, nor counts
    services.sign(running, user=paul, decision=GO)
    assert gate.evaluate(running).can_advance


def test_a_no_go_blocks_even_when_the_quorum_is_reached(running, groups, erin, paul):
    services.sign(running, user=erin, decision=GO)
    services.sign(running, user=paul, decision=GO)
    pam = member("pam", groups[PRODUCT])
    services.sign(running, user=pam, decision=NO_GO, comment="Legal has not cleared the copy")
    assert kinds(running) == ["no_go"]
    services.withdraw(running, user=pam)
    assert gate.evaluate(running).can_advance


def test_a_no_go_needs_a_comment(running, paul):
    with pytest.raises(ValidationError) as refused:
        services.sign(running, user=paul, decision=NO_GO, comment="   ")
    assert "comment" in refused.value.message_dict
    assert not running.signoffs.exists()


def test_a_new_decision_replaces_the_earlier_one(running, erin, paul):
    services.sign(running, user=paul, decision=NO_GO, comment="wait for the fix")
    services.sign(running, user=paul, decision=GO, comment="fix is out")
    services.sign(running, user=erin, decision=GO)
    assert gate.evaluate(running).can_advance
    assert running.signoffs.filter(signer=paul, withdrawn_at__isnull=False).count() == 1
    event = running.events.filter(verb=EventVerb.SIGNED_OFF, actor_name="paul").latest("id")
    assert event.data["replaces"] == NO_GO


def test_quorum_reached_records_one_decision_event_with_every_signer(running, erin, paul, groups):
    services.sign(running, user=erin, decision=GO, comment="Error budget intact")
    assert not running.events.filter(verb=EventVerb.SIGNOFF_DECIDED).exists()
    services.sign(running, user=paul, decision=GO, comment="Feedback is positive")
    services.sign(running, user=member("pia", groups[PRODUCT]), decision=GO)  # past the quorum

    decided = running.events.get(verb=EventVerb.SIGNOFF_DECIDED)
    signers = {(s["signer"], s["decision"], s["comment"]) for s in decided.data["signers"]}
    assert signers == {
        ("erin", GO, "Error budget intact"),
        ("paul", GO, "Feedback is positive"),
    }
    assert decided.stage.name == "canary"
    verbs = list(running.events.order_by("id").values_list("verb", flat=True))
    assert verbs.count(EventVerb.SIGNED_OFF) == 3


def test_a_sign_off_outlives_pause_and_resume_but_not_its_stage(running, erin, paul, rita_actor):
    services.sign(running, user=erin, decision=GO)
    transitions.pause(running, actor=rita_actor)
    transitions.resume(running, actor=rita_actor)
    services.sign(running, user=paul, decision=GO)
    assert gate.evaluate(running).can_advance  # Erin's go from before the pause still counts


def test_a_sign_off_for_an_earlier_entry_of_the_stage_does_not_count(running, erin, paul):
    services.sign(running, user=erin, decision=GO)
    services.sign(running, user=paul, decision=GO)
    assert gate.evaluate(running).can_advance
    # The stage entered again (e.g. traffic taken back to it after a problem): a new attempt.
    stage = running.current_stage
    stage.entered_at = stage.entered_at + timedelta(hours=3)
    stage.save(update_fields=["entered_at"])
    running.refresh_from_db()
    assert kinds(running) == ["signoff"]
    assert "a go from Engineering managers, Product" in details(running)


def test_sign_offs_expire_after_the_rules_validity(plan, groups, service, production, erin, paul):
    add_rule(plan, "canary", [groups[EM], groups[PRODUCT]], valid_for=timedelta(hours=48))
    with time_machine.travel(T0, tick=False) as clock:
        release = make_release(service=service, environment=production, plan=plan)
        transitions.start(release, actor=Actor.system("tests"))
        services.sign(release, user=erin, decision=GO)
        clock.shift(timedelta(hours=47))
        services.sign(release, user=paul, decision=GO)
        assert gate.evaluate(release).can_advance
        clock.shift(timedelta(hours=2))
        assert "a go from Engineering managers" in details(release)


def test_a_start_rule_gates_starting(plan, groups, service, production, olga, rita_actor):
    add_rule(plan, None, [groups[ONCALL]])
    release = make_release(service=service, environment=production, plan=plan)
    assert "Sign-off needed for the start: a go from On-call" in details(release)
    with pytest.raises(TransitionError):
        transitions.start(release, actor=rita_actor)
    services.sign(release, user=olga, decision=GO)
    transitions.start(release, actor=rita_actor)
    assert release.status == ReleaseStatus.IN_PROGRESS
    assert gate.evaluate(release).can_advance  # canary's exit asks for nobody


def test_plan_edits_never_rewrite_a_registered_release(plan, groups, service, production, olga):
    rule = add_rule(plan, None, [groups[ONCALL]])
    release = make_release(service=service, environment=production, plan=plan)
    rule.delete()
    assert "a go from On-call" in details(release)
    later = make_release(service=service, environment=production, plan=plan, version="2")
    assert gate.evaluate(later).can_advance


def test_an_outsiders_go_is_refused(running, dave):
    with pytest.raises(services.SignOffRefused) as refused:
        services.sign(running, user=dave, decision=GO)
    assert "not in any group this gate asks to sign (Engineering managers, Product)" in str(
        refused.value
    )
    assert not running.signoffs.exists()


def test_a_release_manager_overrides_a_no_go_with_a_recorded_reason(running, paul, rita_actor):
    services.sign(running, user=paul, decision=NO_GO, comment="not convinced")
    transitions.advance(running, actor=rita_actor, force=True, reason="CEO call: ship it")
    override = running.events.get(verb=EventVerb.GATE_OVERRIDDEN)
    assert override.reason == "CEO call: ship it"
    assert {b["kind"] for b in override.data["blockers"]} == {"no_go", "signoff"}
    assert running.current_stage.name == "half"

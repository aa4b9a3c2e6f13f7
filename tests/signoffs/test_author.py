"""The release's author may not approve it unless the rule says so; a no-go stays theirs."""

from __future__ import annotations

import pytest

from apps.core.actors import Actor
from apps.rollouts import gate, transitions
from apps.signoffs import services
from apps.signoffs.choices import Decision
from tests.factories import UserFactory, make_release

from .conftest import EM, PRODUCT, add_rule

pytestmark = pytest.mark.django_db


def started(plan, service, production, **fields):
    release = make_release(service=service, environment=production, plan=plan, **fields)
    transitions.start(release, actor=Actor.system("tests"))
    return release


def test_the_authors_own_go_is_refused(plan, groups, service, production, erin, paul):
    add_rule(plan, "canary", [groups[EM], groups[PRODUCT]])
    release = started(plan, service, production, author=erin)
    with pytest.raises(services.SignOffRefused) as refused:
        services.sign(release, user=erin, decision=Decision.GO)
    assert "You are this release's author" in str(refused.value)
    assert not release.signoffs.exists()
    # A no-go from the author is always welcome.
    services.sign(release, user=erin, decision=Decision.NO_GO, comment="found a bug in my code")
    assert [b.kind for b in gate.evaluate(release).blockers] == ["no_go", "signoff"]


def test_an_author_named_by_ci_is_recognised_by_username(plan, groups, service, production, erin):
    add_rule(plan, "canary", [groups[EM]])
    release = started(plan, service, production, author_name="Erin")
    with pytest.raises(services.SignOffRefused):
        services.sign(release, user=erin, decision=Decision.GO)


def test_the_rule_may_let_authors_approve(plan, groups, service, production, erin):
    add_rule(plan, "canary", [groups[EM]], author_may_approve=True)
    release = started(plan, service, production, author=erin)
    services.sign(release, user=erin, decision=Decision.GO)
    assert gate.evaluate(release).can_advance


@pytest.mark.parametrize(
    "reported",
    [
        "Erin <erin@example.com>",  # git's "Name <email>"
        "Erin Example <ERIN@Example.com>",
        "erin@example.com",
        " ERIN ",
        "Someone Else <erin>",  # the address part as a username
    ],
)
def test_an_author_named_by_ci_in_any_format_may_not_approve(
    plan, groups, service, production, erin, paul, reported
):
    add_rule(plan, "canary", [groups[EM], groups[PRODUCT]])
    release = started(plan, service, production, author_name=reported)
    with pytest.raises(services.SignOffRefused) as refused:
        services.sign(release, user=erin, decision=Decision.GO)
    assert "You are this release's author" in str(refused.value)
    services.sign(release, user=paul, decision=Decision.GO)
    assert not release.signoffs.filter(signer=erin).exists()
    assert [b.kind for b in gate.evaluate(release).blockers] == ["signoff"]


def test_an_author_matching_nobody_holds_a_gate_that_bars_authors(
    plan, groups, service, production, erin, paul
):
    add_rule(plan, "canary", [groups[EM], groups[PRODUCT]])
    release = started(plan, service, production, author_name="Mallory <mallory@elsewhere.test>")
    services.sign(release, user=erin, decision=Decision.GO)
    services.sign(release, user=paul, decision=Decision.GO)
    verdict = gate.evaluate(release)
    assert [b.kind for b in verdict.blockers] == ["author_unmatched"]
    assert "Mallory <mallory@elsewhere.test>" in verdict.blockers[0].detail
    assert "matches no user" in verdict.blockers[0].detail
    # A release manager names the author's account: the gate opens.
    release.author = UserFactory(username="mallory")
    release.save(update_fields=["author"])
    assert gate.evaluate(release).can_advance


def test_an_unmatched_author_does_not_hold_a_gate_that_lets_authors_approve(
    plan, groups, service, production, erin
):
    add_rule(plan, "canary", [groups[EM]], author_may_approve=True)
    release = started(plan, service, production, author_name="Mallory <mallory@elsewhere.test>")
    services.sign(release, user=erin, decision=Decision.GO)
    assert gate.evaluate(release).can_advance


def test_an_author_who_signs_up_later_is_matched_then(plan, groups, service, production, erin):
    add_rule(plan, "canary", [groups[EM]])
    release = started(plan, service, production, author_name="Nina <nina@example.com>")
    assert [b.kind for b in gate.evaluate(release).blockers] == ["signoff", "author_unmatched"]
    nina = UserFactory(username="nina.k", email="Nina@Example.com")
    nina.groups.add(groups[EM])
    with pytest.raises(services.SignOffRefused):
        services.sign(release, user=nina, decision=Decision.GO)
    assert [b.kind for b in gate.evaluate(release).blockers] == ["signoff"]

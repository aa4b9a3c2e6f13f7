"""The release's author may not approve it unless the rule says so; a no-go stays theirs."""

from __future__ import annotations

import pytest

from apps.core.actors import Actor
from apps.rollouts import gate, transitions
from apps.signoffs import services
from apps.signoffs.choices import Decision
from tests.factories import make_release

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

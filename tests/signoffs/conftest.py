"""Groups, signers and a plan whose gates ask for sign-offs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group

from apps.core.actors import Actor
from apps.releases.models import RolloutPlan
from apps.rollouts import transitions
from apps.signoffs.choices import QuorumMode
from apps.signoffs.models import SignOffRule
from tests.factories import PlanFactory, UserFactory, make_release

EM, PRODUCT, ONCALL = "Engineering managers", "Product", "On-call"


@pytest.fixture
def groups(db) -> dict[str, Group]:
    return {name: Group.objects.get_or_create(name=name)[0] for name in (EM, PRODUCT, ONCALL)}


def member(username: str, *group_objs: Group):
    user = UserFactory(username=username)
    user.groups.add(*group_objs)
    return user


@pytest.fixture
def erin(groups):
    """Erin, an engineering manager."""
    return member("erin", groups[EM])


@pytest.fixture
def paul(groups):
    """Paul, product."""
    return member("paul", groups[PRODUCT])


@pytest.fixture
def olga(groups):
    """Olga, on call."""
    return member("olga", groups[ONCALL])


@pytest.fixture
def oscar(groups):
    """Oscar, also on call."""
    return member("oscar", groups[ONCALL])


@pytest.fixture
def dave(db):
    """Dave, a developer in none of the sign-off groups."""
    return UserFactory(username="dave")


@pytest.fixture
def plan(db) -> RolloutPlan:
    return PlanFactory(
        slug="gated",
        stages=[
            ("canary", 5, timedelta(0), False),
            ("half", 50, timedelta(0), False),
            ("full", 100, timedelta(0), False),
        ],
    )


def add_rule(
    plan: RolloutPlan,
    stage: str | None,
    groups: list[Group],
    *,
    quorum: str = QuorumMode.EACH_GROUP,
    approvals: int = 1,
    **terms: object,
) -> SignOffRule:
    """A rule on the plan's start (stage None) or on leaving the named stage."""
    rule = SignOffRule.objects.create(
        plan=plan,
        stage_template=plan.stages.get(name=stage) if stage else None,
        quorum=quorum,
        approvals_needed=approvals,
        **terms,
    )
    rule.groups.set(groups)
    return rule


@pytest.fixture
def running(plan, groups, service, production):
    """A release at its canary stage whose exit needs a go from EM and from Product."""
    add_rule(plan, "canary", [groups[EM], groups[PRODUCT]])
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=Actor.system("tests"))
    return release

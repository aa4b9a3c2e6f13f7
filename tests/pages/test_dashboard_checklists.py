"""The dashboard's cards name only what holds a release's next step: a checklist that does not
apply yet (a later stage's exit, the post-deployment list) neither turns a card red nor shows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from apps.checklists.choices import ChecklistKind
from apps.core.actors import Actor
from apps.rollouts import transitions
from tests.checklists.helpers import link, make_template
from tests.factories import PlanFactory, make_release
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db


def test_checklists_not_yet_due_leave_the_card_alone(service, production, victor) -> None:
    plan = PlanFactory(
        slug="dash-due",
        stages=[("canary", 5, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )
    link(plan, make_template("Full exit", ChecklistKind.STAGE_EXIT, {"F": ["p95 ok"]}), "full")
    post = {"After": [f"Check {n}" for n in range(1, 6)]}
    link(plan, make_template("24-hour check", ChecklistKind.POST_DEPLOYMENT, post))
    release = make_release(service=service, environment=production, plan=plan)
    transitions.start(release, actor=Actor.system("tests"))

    html = client_for(victor).get(reverse("pages:dashboard")).content.decode()
    link_to = reverse("pages:release", args=[release.pk])
    card = re.search(rf'<li class="card[^"]*">(?:(?!</li>).)*?href="{link_to}".*?</li>', html, re.S)
    assert card, "no card for the release"
    assert 'class="card"' in card[0] and "light-green" in card[0]
    assert "24-hour check" not in card[0] and "Full exit" not in card[0]

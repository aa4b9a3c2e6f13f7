"""The dashboard: rolling releases by service with a gate light in words, soak left, what waits
for my sign-off, planned releases, and what finished lately; the navigation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.core.actors import Actor
from apps.rollouts import transitions
from apps.signoffs import services as signoffs
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


def dashboard(user) -> str:
    response = client_for(user).get("/")
    assert response.status_code == 200
    return response.content.decode()


def card(html: str, version: str) -> str:
    """The dashboard card of one release."""
    return re.search(
        rf'<li class="card[^"]*">(?:(?!</li>).)*?>{re.escape(version)}</a>.*?</li>', html, re.S
    )[0]


def test_the_root_url_is_the_dashboard_and_needs_a_login(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('signoffs:login')}?next=/"
    assert reverse("pages:dashboard") == "/"


def test_running_releases_by_service_with_a_worded_gate_light(rollout, production, victor):
    soaking_plan = PlanFactory(
        slug="soaking",
        stages=[("canary", 5, timedelta(hours=2), False), ("full", 100, timedelta(0), False)],
    )
    billing = ServiceFactory(name="Billing", slug="billing", default_plan=soaking_plan)
    soaking = make_release(service=billing, environment=production, version="7.1.0")
    with time_machine.travel(timezone.now() - timedelta(minutes=30), tick=False):
        transitions.start(soaking, actor=SYSTEM)
    # Paused in staging: one release of a service runs in an environment at a time.
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    paused = make_release(service=billing, environment=staging, version="7.0.9")
    transitions.start(paused, actor=SYSTEM)
    transitions.pause(paused, actor=SYSTEM, reason="error rate")
    ready = make_release(
        service=ServiceFactory(name="Search", slug="search"),
        environment=production,
        version="3.0.0",
    )
    transitions.start(ready, actor=SYSTEM)

    html = dashboard(victor)
    services = re.findall(r'<h3 id="svc-\d+">([^<]+?)\s*(?:<|$)', html)
    assert [s.strip() for s in services] == ["AI Orchestra", "Billing", "Search"]

    mine = card(html, rollout.release.version)
    assert "5 %</strong> · canary · stage 1 of 3" in mine
    assert re.search(r'class="light light-amber".*?Amber', mine, re.S)
    # The most important blocker first, in words (a missing sign-off before an open checklist),
    # the rest counted by kind.
    assert "Sign-off needed" in mine or "sign-off" in mine.lower()
    assert "(and 1 checklist)</span>" in mine

    soak = card(html, "7.1.0")
    assert re.search(r"Soak: 1h (29|30)m left of 2h 00m", soak)
    assert "Amber" in soak

    held = card(html, "7.0.9")
    assert "Red" in held and "The release is paused; resume it first." in held
    assert 'class="card card-red"' in held

    go = card(html, "3.0.0")
    assert "Green" in go and "May advance now." in go
    assert "<strong>3</strong> in progress" in html and "<strong>1</strong> paused" in html


def test_waiting_for_my_signoff(rollout, alice, victor):
    assert "Waiting for your sign-off" not in dashboard(victor)
    html = dashboard(alice)
    waiting = re.search(r'<section class="callout".*?</section>', html, re.S)[0]
    page = reverse("signoffs:page", args=[rollout.release.pk])
    assert f'<a href="{page}">AI Orchestra {rollout.release.version}' in waiting
    assert "(leaving canary)" in waiting

    signoffs.sign(rollout.release, user=alice, decision="go")
    assert "Waiting for your sign-off" not in dashboard(alice)


def test_planned_and_recently_finished_releases(rollout, production, victor):
    service = rollout.release.service
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    planned = make_release(service=service, environment=staging, version="2.5.0")
    # Planned for production, where the rollout's release still runs: the card says so.
    waiting = make_release(service=service, environment=production, version="2.6.0")
    rolled_back = make_release(service=service, environment=staging, version="2.3.1")
    transitions.start(rolled_back, actor=SYSTEM)
    transitions.rollback(rolled_back, actor=SYSTEM, reason="bad")
    old = make_release(service=service, environment=staging, version="1.0.0")
    with time_machine.travel(timezone.now() - timedelta(days=30), tick=False):
        transitions.start(old, actor=SYSTEM)
        transitions.rollback(old, actor=SYSTEM, reason="long ago")

    html = dashboard(victor)
    planned_section = re.search(r'<section aria-labelledby="h-planned">.*?</section>', html, re.S)[
        0
    ]
    assert planned.version in planned_section and "May start now." in planned_section
    held = card(planned_section, waiting.version)
    assert (
        f"Another release of AI Orchestra is running in Production: {rollout.release.version} "
        f"(release #{rollout.release.pk}), in progress at stage canary (5 %)."
    ) in held
    finished = re.search(r'<section aria-labelledby="h-finished">.*?</section>', html, re.S)[0]
    assert "2.3.1" in finished and "Rolled back" in finished
    assert "1.0.0" not in finished


def test_navigation_links_the_pages_that_exist(victor):
    nav = re.search(r'<nav class="site-nav".*?</nav>', dashboard(victor), re.S)[0]
    links = re.findall(r'<a href="([^"]+)"', nav)
    assert links[0] == "/"
    assert "/oncall/" in links  # the incidents app's page
    assert "/incidents/" in links
    assert "/admin/" in links  # victor is staff
    assert 'href="/" aria-current="page"' in nav


def test_the_gate_line_names_the_most_important_blocker_first(rollout, victor):
    from apps.releases.choices import BlockerKind
    from apps.signoffs.choices import FreezeRecurrence
    from apps.signoffs.models import FreezeWindow

    # The rollout waits for a checklist and a sign-off (amber); a freeze makes it red, and the
    # line leads with the freeze although the gate lists the checklist first.
    now = timezone.now()
    FreezeWindow.objects.create(
        name="Launch week",
        reason="Marketing launch",
        recurrence=FreezeRecurrence.ONE_OFF,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
    )
    kinds = [b.kind for b in gate_blockers(rollout.release)]
    assert kinds[0] == BlockerKind.CHECKLIST and BlockerKind.FREEZE in kinds

    mine = card(dashboard(victor), rollout.release.version)
    assert re.search(r'class="light light-red".*?Red', mine, re.S)
    line = re.search(r'<span class="gate-text">([^<]*)</span>', mine)[1]
    assert line.startswith("Change freeze &#x27;Launch week&#x27; until")
    # The rest counted by kind, most severe kind first.
    assert line.endswith("(and 1 sign-off, 1 checklist)"), line


def gate_blockers(release):
    from apps.rollouts import gate

    release.refresh_from_db()
    return gate.evaluate(release).blockers

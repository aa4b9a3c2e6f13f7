"""The dashboard as a fleet view: filtered by service, environment and gate state, paged, in
order of urgency, each gate line naming its most important blocker first, from kept verdicts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.core.actors import Actor
from apps.incidents.choices import Severity
from apps.incidents.lifecycle import open_incident
from apps.releases.models import Service
from apps.releases.roles import APPROVERS
from apps.rollouts import transitions
from apps.rollouts.models import KeptVerdict
from apps.signoffs.models import SignOffRule
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


def soaking_plan(slug: str, *, signoff: bool = False):
    plan = PlanFactory(
        slug=slug,
        stages=[("canary", 5, timedelta(hours=2), False), ("full", 100, timedelta(0), False)],
    )
    if signoff:
        rule = SignOffRule.objects.create(plan=plan, stage_template=plan.stages.get(name="canary"))
        rule.groups.set([Group.objects.get(name=APPROVERS)])
    return plan


@pytest.fixture
def fleet(production, django_capture_on_commit_callbacks) -> dict[str, str]:
    """Five rolling releases, their versions by what holds them:

    alpha 1.0.0 production, green; beta 2.0.0 staging, paused (red); gamma 3.0.0 production,
    soaking (amber); delta 4.0.0 production, soaking under a SEV1 incident (red); epsilon 5.0.0
    production, soaking and waiting for a sign-off (amber)."""
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    free = PlanFactory(slug="free", stages=[("all", 100, timedelta(0), False)])
    with django_capture_on_commit_callbacks(execute=True):
        alpha = ServiceFactory(name="Alpha", slug="alpha", default_plan=free)
        transitions.start(make_release(service=alpha, environment=production, version="1.0.0"),
                          actor=SYSTEM)  # fmt: skip
        beta = ServiceFactory(name="Beta", slug="beta", default_plan=free)
        paused = transitions.start(
            make_release(service=beta, environment=staging, version="2.0.0"), actor=SYSTEM
        )
        transitions.pause(paused, actor=SYSTEM, reason="error rate")
        with time_machine.travel(timezone.now() - timedelta(minutes=30), tick=False):
            for name, version, plan in (
                ("Gamma", "3.0.0", soaking_plan("soak-g")),
                ("Delta", "4.0.0", soaking_plan("soak-d")),
                ("Epsilon", "5.0.0", soaking_plan("soak-e", signoff=True)),
            ):
                service = ServiceFactory(name=name, slug=name.lower(), default_plan=plan)
                transitions.start(
                    make_release(service=service, environment=production, version=version),
                    actor=SYSTEM,
                )
        open_incident(
            service=Service.objects.get(slug="delta"),
            title="Checkout down",
            actor=SYSTEM,
            severity=Severity.SEV1,
        )
    return {
        "alpha": "1.0.0",
        "beta": "2.0.0",
        "gamma": "3.0.0",
        "delta": "4.0.0",
        "epsilon": "5.0.0",
    }


def page(user, query: str = "", status: int = 200) -> str:
    response = client_for(user).get("/" + query)
    assert response.status_code == status, response.content[:500]
    return response.content.decode()


def versions(html: str) -> list[str]:
    """The versions of the release cards, in page order."""
    return re.findall(r'<a class="release-link" href="/releases/\d+/">([^<]+)</a>', html)


def card(html: str, version: str) -> str:
    return re.search(
        rf'<li class="card[^"]*">(?:(?!</li>).)*?>{re.escape(version)}</a>.*?</li>', html, re.S
    )[0]


def test_filters_by_service_environment_and_gate_state(fleet, victor):
    everything = page(victor)
    assert sorted(versions(everything)) == ["1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0"]
    assert "1–5 of 5" in everything and "matching" not in everything
    assert versions(page(victor, "?service=beta")) == ["2.0.0"]
    assert versions(page(victor, "?environment=staging")) == ["2.0.0"]
    assert sorted(versions(page(victor, "?environment=production"))) == [
        "1.0.0", "3.0.0", "4.0.0", "5.0.0"
    ]  # fmt: skip
    assert sorted(versions(page(victor, "?gate=red"))) == ["2.0.0", "4.0.0"]
    assert sorted(versions(page(victor, "?gate=amber"))) == ["3.0.0", "5.0.0"]
    assert versions(page(victor, "?gate=green")) == ["1.0.0"]
    both = page(victor, "?gate=red&environment=production")
    assert versions(both) == ["4.0.0"]
    assert "1–1 of 1 matching" in both
    # The summary is the fleet's, whatever the filter.
    assert "<strong>4</strong> in progress" in both and "<strong>1</strong> paused" in both
    assert "<strong>2</strong> with a red gate" in both
    assert "<strong>2</strong> waiting" in both and "<strong>1</strong> ready to advance" in both
    # The form shows what is applied.
    assert '<option value="red" selected>' in both
    assert '<option value="production" selected>' in both
    nothing = page(victor, "?service=alpha&gate=red")
    assert versions(nothing) == [] and "No rolling release matches these filters." in nothing


def test_the_filter_reads_the_kept_state(fleet, victor):
    """The gate-state filter is the kept verdict's (apps.rollouts.verdicts), not a second
    judgement: a kept row says amber, the page lists the release as amber."""
    release_id = KeptVerdict.objects.get(state="green").release_id
    KeptVerdict.objects.filter(pk=release_id).update(state="amber")
    assert "1.0.0" in versions(page(victor, "?gate=amber"))
    assert versions(page(victor, "?gate=green")) == []


def test_urgency_order_and_the_most_important_blocker_first(fleet, victor):
    html = page(victor, "?order=urgency")
    # Red before amber before green; among reds a paused release (its own action) before an
    # incident; among ambers a missing sign-off before soak alone.
    assert versions(html) == ["2.0.0", "4.0.0", "5.0.0", "3.0.0", "1.0.0"]
    delta = card(html, "4.0.0")
    # The gate lists soak before incidents; the line leads with the incident.
    assert re.search(r'<span class="gate-text">Incident #\d+ \(SEV1', delta), delta
    assert "(and 1 soak)" in delta  # the rest counted by kind
    epsilon = card(html, "5.0.0")
    assert re.search(r'<span class="gate-text">[^<]*[Ss]ign-off', epsilon), epsilon
    assert "Soak" not in re.search(r'<span class="gate-text">([^<]*)', epsilon)[1]
    assert re.search(r'<span class="gate-text">[^<]*[Ss]oak', card(html, "3.0.0"))
    # By service (the default), the same cards, grouped under each service's name.
    grouped = page(victor)
    services = re.findall(r'<h3 id="svc-\d+">([^<]+?)\s*(?:<|$)', grouped)
    assert [s.strip() for s in services] == ["Alpha", "Beta", "Delta", "Epsilon", "Gamma"]


def test_paging_keeps_the_filters(fleet, victor):
    first = page(victor, "?order=urgency&per=2")
    assert versions(first) == ["2.0.0", "4.0.0"]
    assert "1–2 of 5" in first and "page 1 of 3" in first
    assert 'rel="next" href="?order=urgency&amp;page=2&amp;per=2"' in first
    assert 'rel="prev"' not in first
    second = page(victor, "?order=urgency&per=2&page=2")
    assert versions(second) == ["5.0.0", "3.0.0"]
    assert 'rel="prev" href="?order=urgency&amp;per=2"' in second
    last = page(victor, "?order=urgency&per=2&page=3")
    assert versions(last) == ["1.0.0"] and 'rel="next"' not in last
    filtered = page(victor, "?gate=amber&per=1&page=2")
    assert versions(filtered) == ["3.0.0"] or versions(filtered) == ["5.0.0"]
    assert 'rel="prev" href="?gate=amber&amp;per=1"' in filtered


@pytest.mark.parametrize(
    "query, named",
    [
        ("?gate=purple", "gate must be one of red, amber, green; got &#x27;purple&#x27;"),
        ("?order=newest", "order must be one of service, urgency"),
        ("?page=0", "page must be a whole number 1 or more; got &#x27;0&#x27;"),
        ("?page=two", "page must be a whole number"),
        ("?per=5000", "per must be a whole number from 1 to 1000; got &#x27;5000&#x27;"),
        ("?page=9", "page 9 is past the last page (1)"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(fleet, victor, query, named):
    html = page(victor, query, status=400)
    assert named in html
    assert versions(html) == []

"""The release page shows the stages, the gate with links to what resolves it, checklists,
sign-offs, charts, the timeline, and buttons that act through the transitions module."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.checklists.models import ChecklistItem
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Event
from apps.signoffs import services as signoffs
from tests.pages.conftest import SMOKE, client_for

pytestmark = pytest.mark.django_db


def page(client, release, **params) -> str:
    response = client.get(reverse("pages:release", args=[release.pk]), params)
    assert response.status_code == 200
    return response.content.decode()


def test_login_is_required_and_leads_back(rollout):
    url = reverse("pages:release", args=[rollout.release.pk])
    from django.test import Client

    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('signoffs:login')}?next={url}"


def test_a_person_without_a_role_is_told_why(rollout, outsider):
    response = client_for(outsider).get(reverse("pages:release", args=[rollout.release.pk]))
    assert response.status_code == 403
    assert "Viewers, Approvers or Release managers" in response.content.decode()


def test_header_stages_and_gate_blockers_link_to_what_resolves_them(rollout, victor):
    html = page(client_for(victor), rollout.release)
    assert re.search(r'id="traffic">Traffic <strong>5 %</strong>', html)
    assert "canary · stage 1 of 3" in html
    # The stage timeline: canary current, the others pending.
    stages = re.findall(r'<li class="stage stage-(\w+)( stage-current)?"', html)
    assert stages == [("active", " stage-current"), ("pending", ""), ("pending", "")]
    # The gate is amber (it only waits) and says so in a word, not by colour alone.
    assert 'class="light light-amber"' in html and "Amber" in html
    assert re.search(
        r"Checklist &#x27;Canary exit pages&#x27;.*?required item open: "
        + SMOKE
        + r'.*? — <a href="#checklists">tick the open items</a>',
        html,
    )
    assert re.search(r'Sign-off needed for leaving stage canary.*? — <a href="#signoffs">', html)


def test_checklist_items_are_tick_boxes_for_those_allowed(rollout, alice, victor):
    item = ChecklistItem.objects.get(text=SMOKE)
    approver_html = page(client_for(alice), rollout.release)
    box = re.search(rf'<li id="item-{item.pk}".*?</li>', approver_html, re.S)[0]
    assert 'role="checkbox" aria-checked="false"' in box and "disabled" not in box

    viewer_html = page(client_for(victor), rollout.release)
    box = re.search(rf'<li id="item-{item.pk}".*?</li>', viewer_html, re.S)[0]
    assert 'disabled aria-describedby="why-no-tick"' in box
    assert "Ticking items needs the Approvers or Release managers role." in viewer_html

    response = client_for(alice).post(
        reverse("pages:tick_item", args=[rollout.release.pk, item.pk]), {"done": "1"}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.is_done and item.actor_user == alice
    html = page(client_for(alice), rollout.release)
    assert re.search(rf'<li id="item-{item.pk}" class="item item-done">', html)
    assert "done by alice" in html


def test_signoffs_given_and_needed_and_signing_from_the_page(rollout, alice):
    client = client_for(alice)
    html = page(client, rollout.release)
    assert "Current gate: <strong>leaving stage canary</strong>" in html
    assert "Still needed: <strong>a go from Approvers</strong>" in html

    response = client.post(
        reverse("pages:sign", args=[rollout.release.pk]), {"decision": "go", "comment": "LGTM"}
    )
    assert response.status_code == 302
    html = page(client, rollout.release)
    assert "Signed off" in html and "from alice" in html and "“LGTM”" in html
    status = signoffs.gate_status(rollout.release)
    assert status.met


def test_a_no_go_needs_a_comment(rollout, alice):
    response = client_for(alice).post(
        reverse("pages:sign", args=[rollout.release.pk]), {"decision": "no_go", "comment": " "}
    )
    assert response.status_code == 400
    assert "A no-go needs a comment saying why." in response.content.decode()


def test_advancing_moves_the_timeline(rollout, rita, alice):
    item = ChecklistItem.objects.get(text=SMOKE)
    client_for(alice).post(
        reverse("pages:tick_item", args=[rollout.release.pk, item.pk]), {"done": "1"}
    )
    client_for(alice).post(reverse("pages:sign", args=[rollout.release.pk]), {"decision": "go"})
    client = client_for(rita)
    html = page(client, rollout.release)
    assert 'class="light light-green"' in html
    seen = re.search(r'name="seen" value="([^"]+)"', html)[1]

    response = client.post(
        reverse("pages:transition", args=[rollout.release.pk]),
        {"action": "advance", "reason": "Canary is clean", "seen": seen},
    )
    assert response.status_code == 302
    html = page(client, rollout.release)
    assert re.search(r'id="traffic">Traffic <strong>50 %</strong>', html)
    stages = re.findall(r'<li class="stage stage-(\w+)( stage-current)?"', html)
    assert stages == [("passed", ""), ("active", " stage-current"), ("pending", "")]
    assert re.search(r"<strong>Advanced</strong> from canary to half \(50 %\)", html)
    assert "<blockquote>Canary is clean</blockquote>" in html
    assert "Done: the release is now in progress at half, serving 50 %" in html


def test_the_gate_refusal_is_shown_in_words(rollout, rita):
    before = Event.objects.count()
    response = client_for(rita).post(
        reverse("pages:transition", args=[rollout.release.pk]),
        {"action": "advance", "reason": "try"},
    )
    assert response.status_code == 409
    html = response.content.decode()
    refusal = re.search(r'<div class="error-box" role="alert" id="refusal">.*?</div>', html, re.S)[
        0
    ]
    assert "The gate refuses: the release may not advance now." in refusal
    assert "Sign-off needed for leaving stage canary: a go from Approvers" in refusal
    assert SMOKE in refusal
    # The reason typed is kept in the open confirmation, so trying again is one click.
    assert re.search(r'<details class="action" id="action-advance" open>', html)
    assert Event.objects.count() == before
    rollout.release.refresh_from_db()
    assert rollout.release.current_stage.name == "canary"


def test_a_release_manager_may_override_the_red_gate_with_a_reason(rollout, rita):
    html = page(client_for(rita), rollout.release)
    assert "Override the red gate" in html
    response = client_for(rita).post(
        reverse("pages:transition", args=[rollout.release.pk]),
        {"action": "advance", "reason": "Hotfix, checked by hand", "force": "1"},
    )
    assert response.status_code == 302
    override = Event.objects.get(verb=EventVerb.GATE_OVERRIDDEN)
    assert override.reason == "Hotfix, checked by hand"
    rollout.release.refresh_from_db()
    assert rollout.release.current_stage.name == "half"


def test_a_reason_is_required(rollout, rita):
    response = client_for(rita).post(
        reverse("pages:transition", args=[rollout.release.pk]),
        {"action": "pause", "reason": "  "},
    )
    assert response.status_code == 400
    assert "Give a reason" in response.content.decode()
    rollout.release.refresh_from_db()
    assert rollout.release.status == ReleaseStatus.IN_PROGRESS


def test_a_stale_page_does_not_act_twice(rollout, rita):
    client = client_for(rita)
    html = page(client, rollout.release)
    seen = re.search(r'name="seen" value="([^"]+)"', html)[1]
    url = reverse("pages:transition", args=[rollout.release.pk])
    assert client.post(url, {"action": "pause", "reason": "look", "seen": seen}).status_code == 302
    # The same form again (a second click, or a second person on the same page).
    response = client.post(url, {"action": "pause", "reason": "look", "seen": seen})
    assert response.status_code == 409
    assert "The release changed while you were looking: it is now paused" in (
        response.content.decode()
    )
    assert Event.objects.filter(verb=EventVerb.PAUSED).count() == 1


def test_rollback_with_a_reason_takes_traffic_to_zero(rollout, rita):
    response = client_for(rita).post(
        reverse("pages:transition", args=[rollout.release.pk]),
        {"action": "rollback", "reason": "Error rate climbing"},
    )
    assert response.status_code == 302
    html = page(client_for(rita), rollout.release)
    assert re.search(r'id="traffic">Traffic <strong>0 %</strong>', html)
    assert 'id="release-status">Rolled back<' in html
    assert re.search(r"<strong>Rolled back</strong> from canary \(5 %\): traffic 0 %", html)
    assert "No actions: the release is rolled back." in html


def test_chart_has_threshold_lines_two_series_and_verdicts(rollout, victor):
    html = page(client_for(victor), rollout.release)
    chart = re.search(r'<figure class="chart" id="chart-\d+".*?</figure>', html, re.S)[0]
    assert 'data-threshold="warning"' in chart and 'data-threshold="critical"' in chart
    assert "warning &gt; 2 %" in chart and "critical &gt; 5 %" in chart
    treatment = re.search(r'data-series="treatment" d="([^"]+)"', chart)[1]
    control = re.search(r'data-series="control" d="([^"]+)"', chart)[1]
    assert treatment.startswith("M") and control.startswith("M")
    # One point per minute for the hour shown, not one per sample (two a minute were pushed).
    assert 55 <= treatment.count("L") + treatment.count("M") <= 62
    assert chart.count('data-verdict="pass"') == 4
    assert 'Latest: <span class="verdict verdict-pass">Pass</span>' in chart


def test_each_status_offers_its_own_buttons(rollout, production, rita):
    from apps.core.actors import Actor
    from apps.rollouts import transitions
    from tests.factories import make_release

    def buttons(release) -> list[str]:
        html = page(client_for(rita), release)
        return re.findall(r'<details class="action[^"]*" id="action-(\w+)"', html)

    assert buttons(rollout.release) == ["advance", "pause", "rollback"]
    planned = make_release(service=rollout.release.service, environment=production)
    assert buttons(planned) == ["start", "abort"]
    transitions.pause(rollout.release, actor=Actor.system("tests"), reason="hold")
    assert buttons(rollout.release) == ["resume", "rollback"]
    response = client_for(rita).post(
        reverse("pages:transition", args=[rollout.release.pk]),
        {"action": "resume", "reason": "looks fine again"},
    )
    assert response.status_code == 302
    rollout.release.refresh_from_db()
    assert rollout.release.status == ReleaseStatus.IN_PROGRESS


# --- checklists that do not apply yet are "not yet due", not red ----------------------------------


@pytest.fixture
def checklisted(service, production):
    """A planned release: a pre-deployment list (one manual item, one CI's), an exit list for
    half, and a 24-hour post-deployment list of five required items."""
    from datetime import timedelta

    from apps.checklists.choices import ChecklistKind
    from tests.checklists.helpers import link, make_template
    from tests.factories import PlanFactory, make_release

    no_soak = timedelta(0)
    plan = PlanFactory(
        slug="due-plan",
        stages=[
            ("canary", 5, no_soak, False),
            ("half", 50, no_soak, False),
            ("full", 100, no_soak, False),
        ],
    )
    pre = {"Code": ["Change approved", ("All tests pass", "tests")]}
    link(plan, make_template("Pre-flight", ChecklistKind.PRE_DEPLOYMENT, pre))
    link(plan, make_template("Half exit", ChecklistKind.STAGE_EXIT, {"H": ["p95 ok"]}), "half")
    post = {"After": [f"Check {n}" for n in range(1, 6)]}
    link(plan, make_template("24-hour check", ChecklistKind.POST_DEPLOYMENT, post))
    return make_release(service=service, environment=production, plan=plan)


def checklist_html(html: str, release, name: str) -> str:
    checklist = release.checklists.get(name=name)
    return re.search(
        rf'<section class="checklist" id="checklist-{checklist.pk}".*?</section>', html, re.S
    )[0]


def test_a_planned_release_shows_only_its_pre_deployment_list_in_red(checklisted, alice):
    html = page(client_for(alice), checklisted)
    pre = checklist_html(html, checklisted, "Pre-flight")
    assert '<span class="red">2 required open — the gate waits on it now</span>' in pre

    half = checklist_html(html, checklisted, "Half exit")
    assert 'class="red"' not in half
    assert "Not yet due: applies when the release leaves half." in half

    post = checklist_html(html, checklisted, "24-hour check")
    assert 'class="red"' not in post
    assert "5 required, not yet due" in post
    assert (
        "Not yet due: opens when the release completes; its items cannot be ticked before." in post
    )

    # The automated item is CI's: its box is off for people, and says why.
    tests_item = ChecklistItem.objects.get(checklist__release=checklisted, key="tests")
    box = re.search(rf'<li id="item-{tests_item.pk}".*?</li>', pre, re.S)[0]
    assert f'disabled aria-describedby="ci-{tests_item.pk}"' in box
    assert f'<span id="ci-{tests_item.pk}">reported by CI (tests): CI ticks it</span>' in box


def test_a_running_release_shows_red_only_for_the_exit_it_is_leaving(checklisted, alice, rita):
    from apps.core.actors import Actor
    from apps.rollouts import transitions

    system = Actor.system("tests")
    manager = Actor.for_user(rita)
    transitions.start(checklisted, actor=manager, force=True, reason="CI is down; checked by hand")
    html = page(client_for(alice), checklisted)
    # Forced past: the start is behind, so its open items are no longer red.
    pre = checklist_html(html, checklisted, "Pre-flight")
    assert 'class="red"' not in pre and "No longer due: the release has started." in pre
    assert "Not yet due: applies when the release leaves half." in checklist_html(
        html, checklisted, "Half exit"
    )
    assert 'class="red"' not in checklist_html(html, checklisted, "24-hour check")

    transitions.advance(checklisted, actor=system)  # canary's exit needs no checklist
    html = page(client_for(alice), checklisted)
    half = checklist_html(html, checklisted, "Half exit")
    assert '<span class="red">1 required open — the gate waits on it now</span>' in half
    post = checklist_html(html, checklisted, "24-hour check")
    assert 'class="red"' not in post and "Not yet due: opens when the release completes" in post

"""Who may do what from the pages: viewers only look (403 on every POST), approvers tick and
sign but do not operate, release managers operate; every POST needs the CSRF token."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.checklists.models import ChecklistItem
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Event
from apps.signoffs.models import SignOff
from tests.pages.conftest import SMOKE, client_for

pytestmark = pytest.mark.django_db


def posts(release) -> dict[str, tuple[str, dict[str, str]]]:
    item = ChecklistItem.objects.get(text=SMOKE)
    return {
        "advance": (
            reverse("pages:transition", args=[release.pk]),
            {"action": "advance", "reason": "x", "force": "1"},
        ),
        "rollback": (
            reverse("pages:transition", args=[release.pk]),
            {"action": "rollback", "reason": "x"},
        ),
        "pause": (
            reverse("pages:transition", args=[release.pk]),
            {"action": "pause", "reason": "x"},
        ),
        "tick": (reverse("pages:tick_item", args=[release.pk, item.pk]), {"done": "1"}),
        "sign": (reverse("pages:sign", args=[release.pk]), {"decision": "go"}),
    }


def unchanged(release, events_before: int) -> None:
    release.refresh_from_db()
    assert (release.status, release.current_stage.name) == (ReleaseStatus.IN_PROGRESS, "canary")
    assert Event.objects.count() == events_before
    assert not SignOff.objects.exists()
    assert not ChecklistItem.objects.get(text=SMOKE).is_done


def test_a_viewer_gets_403_on_every_post_and_nothing_changes(rollout, victor):
    client = client_for(victor)
    before = Event.objects.count()
    for name, (url, data) in posts(rollout.release).items():
        response = client.post(url, data)
        assert response.status_code == 403, name
    unchanged(rollout.release, before)


def test_a_viewer_sees_the_buttons_disabled_with_the_reason(rollout, victor):
    html = client_for(victor).get(reverse("pages:release", args=[rollout.release.pk])).content
    html = html.decode()
    why = re.search(r'<p class="notice" id="why-no-actions">(.*?)</p>', html)[1]
    assert "Only release managers may start, advance, pause, resume, roll back or abort" in why
    for label in ("Advance", "Pause", "Roll back"):
        assert re.search(
            rf'<button type="button" disabled aria-describedby="why-no-actions">{label}</button>',
            html,
        )
    assert 'name="action"' not in html  # no transition form at all
    assert "You cannot sign this gate: You are not in any group this gate asks to sign" in html


def test_an_approver_may_sign_and_tick_but_not_advance(rollout, alice):
    client = client_for(alice)
    requests = posts(rollout.release)
    before = Event.objects.count()
    for name in ("advance", "rollback", "pause"):
        url, data = requests[name]
        assert client.post(url, data).status_code == 403, name
    unchanged(rollout.release, before)

    url, data = requests["tick"]
    assert client.post(url, data).status_code == 302
    url, data = requests["sign"]
    assert client.post(url, data).status_code == 302
    assert SignOff.objects.get().signer == alice
    assert ChecklistItem.objects.get(text=SMOKE).is_done
    rollout.release.refresh_from_db()
    assert rollout.release.current_stage.name == "canary"


def test_a_release_manager_outside_the_signing_groups_cannot_sign(rollout, rita):
    url, data = posts(rollout.release)["sign"]
    response = client_for(rita).post(url, data)
    assert response.status_code == 403
    assert (
        "You are not in any group this gate asks to sign (Approvers)" in response.content.decode()
    )
    assert not SignOff.objects.exists()


def test_every_post_needs_the_csrf_token(rollout, rita, alice):
    before = Event.objects.count()
    for user, names in ((rita, ["advance", "rollback", "pause"]), (alice, ["tick", "sign"])):
        client = client_for(user, csrf=True)
        for name in names:
            url, data = posts(rollout.release)[name]
            assert client.post(url, data).status_code == 403, name
    unchanged(rollout.release, before)

    # With the token the page hands out, the same request is done.
    client = client_for(rita, csrf=True)
    html = client.get(reverse("pages:release", args=[rollout.release.pk])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]
    url, data = posts(rollout.release)["pause"]
    assert client.post(url, {**data, "csrfmiddlewaretoken": token}).status_code == 302
    rollout.release.refresh_from_db()
    assert rollout.release.status == ReleaseStatus.PAUSED


def test_get_never_changes_anything(rollout, rita):
    before = Event.objects.count()
    client = client_for(rita)
    for name, (url, data) in posts(rollout.release).items():
        assert client.get(url, data).status_code == 405, name
    unchanged(rollout.release, before)

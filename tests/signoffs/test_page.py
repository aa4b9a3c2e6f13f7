"""The sign-off page: GET changes nothing, POST needs CSRF, outsiders and authors see why not."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.releases.choices import EventVerb
from apps.releases.models import Event
from apps.signoffs.models import SignOff, SignOffRequest
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def page_url(release) -> str:
    return reverse("signoffs:page", args=[release.pk])


def client_for(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_login_is_required(running):
    response = Client().get(page_url(running))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("signoffs:login"))


def test_the_login_page_signs_in_a_person_without_admin_access(running, paul):
    client = Client()
    response = client.post(
        reverse("signoffs:login") + f"?next={page_url(running)}",
        {"username": "paul", "password": "pw-for-tests-1", "next": page_url(running)},
    )
    assert response.status_code == 302 and response["Location"] == page_url(running)
    assert client.get(page_url(running)).status_code == 200


def test_get_shows_the_gate_and_records_nothing(running, paul, erin):
    client_for(erin).post(page_url(running), {"action": "go"})
    counts = (SignOff.objects.count(), Event.objects.count(), SignOffRequest.objects.count())

    response = client_for(paul).get(page_url(running))
    assert response.status_code == 200
    html = response.content.decode()
    assert "AI Orchestra" in html and running.version in html
    assert "canary" in html and "5 %" in html
    assert "Sign-off needed for leaving stage canary: a go from Product" in html
    assert re.search(r"<td>erin</td>\s*<td class=\"green\">Go</td>", html)
    assert 'value="go"' in html and 'value="no_go"' in html
    assert (
        SignOff.objects.count(),
        Event.objects.count(),
        SignOffRequest.objects.count(),
    ) == counts


def test_a_post_without_csrf_is_refused(running, paul):
    client = client_for(paul, csrf=True)
    response = client.post(page_url(running), {"action": "go"})
    assert response.status_code == 403
    assert not SignOff.objects.exists()

    # The same person through the page, with the token the page gave them, is recorded.
    page = client.get(page_url(running))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    response = client.post(
        page_url(running), {"action": "go", "csrfmiddlewaretoken": token, "comment": "LGTM"}
    )
    assert response.status_code == 302
    signoff = SignOff.objects.get()
    assert (signoff.signer, signoff.decision, signoff.comment) == (paul, "go", "LGTM")


def test_a_viewer_outside_the_groups_sees_why_they_cannot_sign(running, victor):
    client = client_for(victor)
    html = client.get(page_url(running)).content.decode()
    assert "You cannot sign this gate: You are not in any group this gate asks to sign" in html
    assert 'value="go"' not in html

    response = client.post(page_url(running), {"action": "go"})
    assert response.status_code == 403
    assert "You are not in any group" in response.content.decode()
    assert not SignOff.objects.exists()


def test_someone_in_no_role_and_no_group_sees_nothing_of_the_release(running, dave):
    """Signed in is not enough: neither the page nor a refused POST shows the release, its gate
    or who signs it."""
    client = client_for(dave)
    for response in (
        client.get(page_url(running)),
        client.post(page_url(running), {"action": "go"}),
        client.post(page_url(running), {"action": "no_go", "comment": ""}),
    ):
        assert response.status_code == 403
        html = response.content.decode()
        assert "You may not see this release" in html
        for detail in (running.service.name, "canary", "Engineering managers", "Product"):
            assert detail not in html
    assert not SignOff.objects.exists()


def test_a_stakeholder_without_a_role_signs_from_the_page(running, paul):
    """Paul is in Product only (no role): the release asks his group, so he sees and signs."""
    assert not paul.has_perm("releases.view_release")
    client = client_for(paul)
    assert client.get(page_url(running)).status_code == 200
    response = client.post(page_url(running), {"action": "go"})
    assert response.status_code == 302
    assert SignOff.objects.filter(signer=paul).exists()


def test_the_authors_go_is_refused_on_the_page(running, erin):
    running.author = erin
    running.save(update_fields=["author"])
    client = client_for(erin)
    html = client.get(page_url(running)).content.decode()
    assert "You cannot give a go: You are this release&#x27;s author" in html
    assert re.search(r'value="go" disabled', html)

    response = client.post(page_url(running), {"action": "go"})
    assert response.status_code == 403
    assert "author" in response.content.decode()
    assert not SignOff.objects.exists()


def test_no_go_without_comment_keeps_nothing_and_says_why(running, paul):
    response = client_for(paul).post(page_url(running), {"action": "no_go", "comment": ""})
    assert response.status_code == 400
    assert "A no-go needs a comment saying why." in response.content.decode()
    assert not SignOff.objects.exists()


def test_no_go_then_withdraw_from_the_page(running, paul):
    client = client_for(paul)
    client.post(page_url(running), {"action": "no_go", "comment": "Wait for the DB migration"})
    html = client.get(page_url(running)).content.decode()
    assert "No-go from paul on leaving stage canary: Wait for the DB migration" in html
    assert "Withdraw my no-go" in html

    response = client.post(page_url(running), {"action": "withdraw"}, follow=True)
    assert "Your sign-off is withdrawn." in response.content.decode()
    assert running.events.filter(verb=EventVerb.SIGNOFF_WITHDRAWN, actor_name="paul").exists()
    assert "No-go from paul" not in response.content.decode()


def test_only_release_managers_ask_early(
    running, rita, paul, erin, mailoutbox, django_capture_on_commit_callbacks
):
    response = client_for(paul).post(page_url(running), {"action": "request"})
    assert response.status_code == 403
    assert not SignOffRequest.objects.exists()

    html = client_for(rita).get(page_url(running)).content.decode()
    assert "Ask for sign-offs now" in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(rita).post(page_url(running), {"action": "request"}, follow=True)
    assert "Asked erin, paul." in response.content.decode()
    assert sorted(m.to[0] for m in mailoutbox) == ["erin@example.com", "paul@example.com"]
    assert SignOffRequest.objects.filter(early=True).count() == 2


def test_a_stage_without_a_rule_says_so(plan, service, production, victor):
    from tests.factories import make_release

    release = make_release(service=service, environment=production, plan=plan)
    html = client_for(victor).get(page_url(release)).content.decode()
    assert "This gate (start) asks for no sign-off." in html


def test_unknown_release_is_404(paul):
    assert client_for(paul).get("/releases/999999/signoff/").status_code == 404


def test_the_page_uses_the_local_stylesheet(running):
    html = client_for(UserFactory(username="zed")).get(page_url(running)).content.decode()
    assert '<link rel="stylesheet" href="/static/css/app.css">' in html
    assert "http" not in re.findall(r"<link[^>]+>", html)[0]


def test_the_release_pages_sign_form_refuses_a_stakeholder_without_the_release_page(running, paul):
    """/releases/<id>/sign/ answered a refusal with the whole release page; someone who may see
    only the sign-offs gets the reason and a way back to them."""
    client = client_for(paul)
    sign_url = reverse("pages:sign", args=[running.pk])
    response = client.post(sign_url, {"decision": "no_go", "comment": ""})
    assert response.status_code == 400
    html = response.content.decode()
    assert "A no-go needs a comment saying why." in html
    assert page_url(running) in html
    assert "canary" not in html and running.service.name not in html

    response = client.post(sign_url, {"decision": "go"})
    assert (response.status_code, response["Location"]) == (302, page_url(running))

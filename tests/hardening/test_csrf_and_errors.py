"""Every form POST of the pages and the admin needs the CSRF token (a forged cross-site POST by a
signed-in release manager changes nothing), and an unexpected error answers a plain 500 page
with no traceback or settings in it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path

from apps.releases.models import Event, Release
from tests.hardening.test_permission_matrix import MANAGER, PAGE_POSTS, ROOT, World

pytestmark = pytest.mark.django_db


def forged(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize("post", PAGE_POSTS, ids=lambda p: p.name)
def test_every_page_post_refuses_a_forged_request(world: World, post) -> None:
    events = Event.objects.count()
    for principal in (MANAGER, ROOT):
        response = forged(world.users[principal]).post(post.path(world), post.data)
        assert response.status_code == 403, (post.name, principal)
        assert b"CSRF" in response.content
    assert Event.objects.count() == events


def test_the_sign_off_page_and_admin_actions_refuse_a_forged_request(world: World) -> None:
    root = forged(world.users[ROOT])
    signoff = root.post(f"/releases/{world.release.pk}/signoff/", {"decision": "go"})
    assert signoff.status_code == 403
    action = root.post(
        "/admin/releases/release/",
        {"action": "pause_releases", "_selected_action": [world.release.pk], "reason": "x"},
    )
    assert action.status_code == 403
    assert Release.objects.get(pk=world.release.pk).status == "in_progress"
    assert root.post("/accounts/logout/").status_code == 403


def _explode(request):
    raise RuntimeError("secret-ish internal detail: SELECT password FROM users")


urlpatterns = [path("boom/", _explode)]


def test_an_unexpected_error_is_a_plain_500_without_a_traceback(settings, rita) -> None:
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(rita)
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    for leak in ("Traceback", "RuntimeError", "SELECT password", "SECRET_KEY", "settings"):
        assert leak not in body, leak

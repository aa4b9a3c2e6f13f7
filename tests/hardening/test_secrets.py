"""Secrets stay secret: an API token's key is shown once, at creation, and nowhere after; a chat
webhook's URL (its path is the credential) appears in no timeline, page, API answer or log line,
and only those who may change the routing see it in the admin."""

from __future__ import annotations

import logging
import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.models import IncidentRouting
from tests.faults.conftest import page_on_call
from tests.faults.services import free_port

pytestmark = pytest.mark.django_db

SECRET = "T0AAAA/B0BBBB/s3cr3tWebhookPath"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_webhook_url_never_shows_beyond_the_routing_form(
    service, rita, victor, run, caplog, django_capture_on_commit_callbacks
):
    url = f"http://127.0.0.1:{free_port()}/services/{SECRET}"  # down: the post fails
    page_on_call(service, webhook_url=url)
    _, key = ApiToken.issue("ci", [service])
    caplog.set_level(logging.DEBUG)
    incident = run(
        lifecycle.open_incident, service=service, title="Errors", actor=Actor.system("tests")
    )
    assert incident.deliveries.filter(target=url).exists()  # it was tried, and failed

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    timeline = api.get(f"/api/v1/incidents/{incident.pk}/")
    assert timeline.status_code == 200
    assert "notification_failed" in timeline.content.decode()
    seen = {
        "API incident": timeline.content.decode(),
        "incident page": logged_in(victor).get(f"/incidents/{incident.pk}/").content.decode(),
        "delivery admin list": logged_in(rita)
        .get("/admin/incidents/notificationdelivery/")
        .content.decode(),
        "delivery admin page": logged_in(victor)
        .get(f"/admin/incidents/notificationdelivery/{incident.deliveries.first().pk}/change/")
        .content.decode(),
        "service admin, viewer": logged_in(victor)
        .get(f"/admin/releases/service/{service.pk}/change/")
        .content.decode(),
        "log": caplog.text,
    }
    for where, text in seen.items():
        assert "s3cr3tWebhookPath" not in text, f"the webhook secret shows in the {where}"
    assert "http://127.0.0.1:" in seen["incident page"]  # where it goes, without the path
    # A release manager edits the routing: the form holds the URL.
    form = logged_in(rita).get(f"/admin/releases/service/{service.pk}/change/")
    assert SECRET in form.content.decode()
    assert IncidentRouting.objects.get(service=service).webhook_url == url


def test_a_token_key_is_shown_once_at_creation_and_never_again(service, rita, caplog):
    caplog.set_level(logging.DEBUG)
    manager = logged_in(rita)
    created = manager.post(
        "/admin/api/apitoken/add/", {"name": "github-ci", "services": [service.pk]}
    )
    assert created.status_code == 200
    token = ApiToken.objects.get(name="github-ci")
    page = created.content.decode()
    keys = set(re.findall(r"rd_[A-Za-z0-9_-]{40,}", page))
    assert len(keys) == 1
    key = keys.pop()
    assert "no-store" in created["Cache-Control"]
    assert token.key_hash != key and key not in token.key_hash
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/services/").status_code == 200  # the key works
    later = [
        manager.get("/admin/api/apitoken/").content.decode(),
        manager.get(f"/admin/api/apitoken/{token.pk}/change/").content.decode(),
        api.get("/api/v1/services/").content.decode(),
        caplog.text,
    ]
    assert not [text for text in later if key in text]


def test_a_wrong_token_is_not_written_to_the_log(service, caplog):
    caplog.set_level(logging.DEBUG)
    guess = "rd_" + "g" * 43
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {guess}")
    assert api.get("/api/v1/services/").status_code == 401
    assert guess not in caplog.text

"""Health endpoint and the issue_token command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from rest_framework.test import APIClient

from apps.api.models import ApiToken, hash_key
from rolloutdesk.celery import app as celery_app


@pytest.mark.django_db
def test_health_ok():
    response = APIClient().get("/api/v1/health/")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["broker"]) == ("ok", "ok", "ok")
    # A fresh database has no run of any periodic job: reported, still a 200.
    assert body["jobs"]["status"] == "stale"
    assert {j["reason"] for j in body["jobs"]["stale"]} == {"has never run"}


@pytest.mark.django_db
def test_health_reports_the_broker_down_but_stays_up(monkeypatch):
    # Celery prefers the environment's CELERY_BROKER_URL (set in CI) over conf.broker_url.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    previous = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = APIClient().get("/api/v1/health/")
    finally:
        celery_app.conf.broker_url = previous
    assert response.status_code == 200
    assert response.json()["broker"] == "down"


@pytest.mark.django_db(transaction=True)
def test_health_is_503_when_the_database_does_not_answer():
    conn = connections["default"]
    saved = dict(conn.settings_dict)
    conn.close()
    if conn.vendor == "sqlite":
        conn.settings_dict["NAME"] = "/nonexistent-dir/nothing.sqlite3"
    else:
        conn.settings_dict["PORT"] = "1"
    try:
        response = APIClient().get("/api/v1/health/")
    finally:
        conn.close()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)
    assert response.status_code == 503
    assert response.json()["database"] == "down"
    assert response.json()["status"] == "down"


@pytest.mark.django_db
def test_issue_token_prints_the_key_once_and_stores_its_hash(service, other_service):
    out = StringIO()
    call_command("issue_token", "ai-orchestra", "billing", "--name", "github-ci", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    token = ApiToken.objects.get(name="github-ci")
    assert token.key_hash == hash_key(key)
    assert set(token.services.values_list("slug", flat=True)) == {"ai-orchestra", "billing"}
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/services/").json()["count"] == 2


@pytest.mark.django_db
def test_issue_token_names_unknown_services(service):
    with pytest.raises(CommandError, match="Unknown service\\(s\\): ghost"):
        call_command("issue_token", "ghost", "--name", "x")
    assert not ApiToken.objects.exists()

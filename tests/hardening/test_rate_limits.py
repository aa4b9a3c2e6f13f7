"""Rate limits: guessing API tokens or passwords from one address is cut off with 429 and
Retry-After (even a right guess, while the block lasts); the API answers 429 past its per-token
rate; other addresses and callers are not affected."""

from __future__ import annotations

import time

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    settings.HARDENING_FAILED_TOKEN_LIMIT = 5
    settings.HARDENING_FAILED_LOGIN_LIMIT = 3
    settings.HARDENING_WINDOW_SECONDS = 300
    return settings


def token_client(key: str, address: str = "203.0.113.7") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_guessing_tokens_is_cut_off_with_429_then_allowed_again(limits, token_key, service):
    start = time.time() // 300 * 300 + 10  # well inside one window
    with time_machine.travel(start, tick=False) as clock:
        for n in range(5):
            assert token_client(f"rd_guess{n}").get("/api/v1/services/").status_code == 401
        refused = token_client("rd_guess5").get("/api/v1/services/")
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) == 290
        assert "Too many invalid API tokens" in refused.json()["detail"]
        # The right key from the same address waits too; another address is not affected.
        assert token_client(token_key).get("/api/v1/services/").status_code == 429
        elsewhere = token_client(token_key, address="198.51.100.1").get("/api/v1/services/")
        assert elsewhere.status_code == 200
        # The window ends: the address may try again.
        clock.move_to(start + 300)
        assert token_client(token_key).get("/api/v1/services/").status_code == 200


def test_failed_sign_ins_are_cut_off_with_429(limits):
    UserFactory(username="erin")  # password "pw-for-tests-1"
    browser = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        wrong = browser.post("/accounts/login/", {"username": "erin", "password": "nope"})
        assert wrong.status_code == 200  # the form again, with its error
    blocked = browser.post("/accounts/login/", {"username": "erin", "password": "pw-for-tests-1"})
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    assert "_auth_user_id" not in browser.session
    admin = browser.post("/admin/login/", {"username": "erin", "password": "pw-for-tests-1"})
    assert admin.status_code == 429  # the admin's sign-in shares the count
    other = Client(REMOTE_ADDR="198.51.100.2")
    ok = other.post("/accounts/login/", {"username": "erin", "password": "pw-for-tests-1"})
    assert ok.status_code == 302


def test_the_api_answers_429_past_its_rate_per_token(monkeypatch, token_key, service):
    from apps.hardening.throttling import ApiRateThrottle

    original = ApiRateThrottle.__init__

    def small(self) -> None:  # API_RATE_LIMIT=3/minute
        original(self)
        self.limit, self.seconds = 3, 60

    monkeypatch.setattr(ApiRateThrottle, "__init__", small)
    client = token_client(token_key)
    for _ in range(3):
        assert client.get("/api/v1/services/").status_code == 200
    limited = client.get("/api/v1/services/")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert "throttled" in limited.json()["detail"].lower()
    # Another caller has a rate of its own.
    assert APIClient().get("/api/v1/health/").status_code == 200

"""Rate limits: guessing API tokens or passwords from one address is cut off with 429 and
Retry-After (even a right guess, while the block lasts); the API answers 429 past its per-token
rate; other addresses and callers are not affected."""

from __future__ import annotations

import json
import os
import time
import uuid

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


@pytest.mark.usefixtures("one_window")
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


@pytest.mark.usefixtures("one_window")
def test_the_api_answers_429_past_its_rate_per_token(monkeypatch, token_key, service):
    from apps.api.throttling import ApiRateThrottle

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


def test_no_password_is_checked_after_the_first_429(limits):
    """Once an address is refused, its sign-ins never reach the password check again."""
    from django.contrib.auth.signals import user_login_failed

    UserFactory(username="erin")
    checked: list[str] = []

    def count(sender: object, credentials: dict, **kwargs: object) -> None:
        checked.append(credentials.get("username", ""))

    user_login_failed.connect(count)
    try:
        browser = Client(REMOTE_ADDR="203.0.113.10")
        codes = [
            browser.post("/accounts/login/", {"username": "erin", "password": f"guess{n}"})
            for n in range(6)
        ]
        assert [r.status_code for r in codes] == [200, 200, 200, 429, 429, 429]
        assert len(checked) == 3
        right = browser.post("/accounts/login/", {"username": "erin", "password": "pw-for-tests-1"})
        assert right.status_code == 429 and len(checked) == 3
        assert "_auth_user_id" not in browser.session
    finally:
        user_login_failed.disconnect(count)


def _cache_default(env: dict[str, str], tmp_path) -> str:
    from tests.test_settings import manage

    script = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    result = manage(["shell", "-c", script], {"SECRET_KEY": "x" * 50, **env}, tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]  # after the shell's own "objects imported"


def test_production_shares_the_counters_through_the_redis_broker_by_default(tmp_path):
    redis = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    assert _cache_default(redis, tmp_path) == "apps.core.cache.RedisCache"
    from rolloutdesk.settings import default_cache

    # The broker's server, the next database: clearing the cache never drops queued tasks.
    assert default_cache("", "redis://:pw@cache.internal:6380/3")["LOCATION"] == (
        "redis://:pw@cache.internal:6380/4"
    )
    assert default_cache("", "redis://cache.internal")["LOCATION"] == "redis://cache.internal/1"
    # An explicit CACHE_URL wins; the embedded default (no broker server) stays in process.
    explicit = {**redis, "CACHE_URL": "dbcache://rolloutdesk_cache"}
    assert _cache_default(explicit, tmp_path) == "django.core.cache.backends.db.DatabaseCache"
    embedded = _cache_default({"CELERY_BROKER_URL": "filesystem://"}, tmp_path)
    assert embedded == "django.core.cache.backends.locmem.LocMemCache"


def test_check_deploy_warns_when_the_counters_are_per_process(tmp_path):
    from tests.test_settings import manage

    production = {
        "DEBUG": "false",
        "SECRET_KEY": "k" * 20 + "-Xq93!vT7pZ0^bW2sL8@fR4&hN6*mC1%dY5",
        "ALLOWED_HOSTS": "rolloutdesk.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "amqp://guest@127.0.0.1//",
    }
    for cache_url in ("locmemcache://", "dummycache://"):
        result = manage(["check", "--deploy"], {**production, "CACHE_URL": cache_url}, tmp_path)
        assert "api.W001" in result.stderr + result.stdout, cache_url
    shared = manage(
        ["check", "--deploy"], {**production, "CACHE_URL": "redis://h:6379/2"}, tmp_path
    )
    assert "api.W001" not in shared.stderr + shared.stdout
    # Without --deploy (a developer's runserver) nothing is said.
    local = manage(["check"], {**production, "CACHE_URL": "locmemcache://"}, tmp_path)
    assert "api.W001" not in local.stderr + local.stdout


@pytest.mark.skipif(
    not hasattr(os, "fork"), reason="the web processes are forked, as gunicorn forks its workers"
)
def test_three_web_processes_share_one_allowance(limits, redis_url):
    """The documented deploy: 3 gunicorn workers, forked after the app loaded. Each process
    here is a real fork with its own cache client; together they check at most `limit`
    passwords from one address, and every later sign-in is refused without a check."""
    from django.core.cache import caches

    # The children run one at a time while the parent waits, each on the database connection
    # it inherited (inside the test's transaction, so they read its rows; on SQLite, the
    # in-memory database they were forked with).
    from rolloutdesk.settings import default_cache

    # The production default with the documented Redis broker (the pytest-django settings:
    # restored after the test), with a prefix of its own so no earlier run's count is read.
    shared = default_cache("", redis_url)
    limits.CACHES = {"default": {**shared, "KEY_PREFIX": f"rd-test-{uuid.uuid4().hex}"}}
    caches["default"].clear()
    UserFactory(username="erin")

    def worker(attempts: int) -> list[int]:
        """One web process: sign-in attempts from the same address, and what each answered."""
        from django.contrib.auth.signals import user_login_failed

        checked: list[int] = []
        user_login_failed.connect(lambda **kwargs: checked.append(1), weak=False)
        browser = Client(REMOTE_ADDR="203.0.113.11")
        codes = [
            browser.post("/accounts/login/", {"username": "erin", "password": "x"}).status_code
            for _ in range(attempts)
        ]
        return [len(checked), *codes]

    results = []
    for _ in range(3):  # one after the other: each worker takes the next requests
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: answer through the pipe, never return into pytest
            try:
                caches.close_all()  # a fresh connection, as a forked gunicorn worker opens
                os.write(write, json.dumps(worker(3)).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            results.append(json.loads(pipe.read()))
        os.waitpid(pid, 0)
    checked = sum(r[0] for r in results)
    codes = [code for r in results for code in r[1:]]
    assert checked == 3, results  # 9 with per-process counters: the allowance times 3
    assert codes == [200, 200, 200] + [429] * 6

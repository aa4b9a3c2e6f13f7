"""Named users, API clients and the services switch shared by every test."""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.releases.roles import APPROVERS, RELEASE_MANAGERS, VIEWERS, ensure_roles
from tests.factories import EnvironmentFactory, ServiceFactory, UserFactory

# In CI every real service must be there: a missing one fails the run instead of skipping.
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def need_service(reason: str) -> None:
    """Skip locally, fail in CI, when a real service the test needs is missing."""
    if REQUIRE_SERVICES:
        pytest.fail(f"Required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def _plain_http_for_servers() -> None:
    """The live server's middleware reads SECURE_SSL_REDIRECT once, when it starts.

    pytest-django's `live_server` is session-scoped, so it starts before any test's `settings`
    override: without DEBUG in the environment (as in CI) it would redirect every request of
    every later test to https. Session autouse fixtures are set up before it.
    """
    from django.test import override_settings

    with override_settings(SECURE_SSL_REDIRECT=False):
        yield


@pytest.fixture(autouse=True)
def _plain_http(settings) -> None:
    """The test client speaks plain HTTP; production redirects it to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False
    # No collectstatic before tests: serve static names without the production manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Rate-limit counters (kept in Django's cache) start empty in every test."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def celery_eager(request: pytest.FixtureRequest):
    """Tasks run in-process during tests, unless the test is marked `real_worker`.

    Tests marked `real_worker` start a real Celery worker and must send to a real broker.
    """
    from rolloutdesk.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = request.node.get_closest_marker("real_worker") is None
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Call a domain function, then run what it queued after commit (Celery runs eagerly)."""

    def call(func, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(*args, **kwargs)

    return call


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL") or os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        url = "redis://127.0.0.1:6379/0"
    parsed = urlparse(url)
    if not _port_open(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        need_service(f"Redis is not reachable at {url}")
    return url


@pytest.fixture
def postgres(settings: object) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        need_service("this test needs PostgreSQL (set DATABASE_URL=postgres://...)")


def _user_in(username: str, group: str):
    # Everyone with a role may open the admin; what they see there is their group's permissions.
    user = UserFactory(username=username, is_staff=True)
    if not Group.objects.filter(name=group).exists():
        ensure_roles()  # a transactional test before this one flushed the migration's groups
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def rita(db):
    """Rita, a release manager."""
    return _user_in("rita", RELEASE_MANAGERS)


@pytest.fixture
def alice(db):
    """Alice, an approver."""
    return _user_in("alice", APPROVERS)


@pytest.fixture
def victor(db):
    """Victor, a viewer."""
    return _user_in("victor", VIEWERS)


@pytest.fixture
def rita_actor(rita) -> Actor:
    return Actor.for_user(rita)


@pytest.fixture
def system_actor() -> Actor:
    return Actor.system("tests")


@pytest.fixture
def service(db):
    return ServiceFactory(name="AI Orchestra", slug="ai-orchestra")


@pytest.fixture
def other_service(db):
    return ServiceFactory(name="Billing", slug="billing")


@pytest.fixture
def production(db):
    return EnvironmentFactory()


@pytest.fixture
def token_key(service) -> str:
    _, key = ApiToken.issue("ci", [service])
    return key


@pytest.fixture
def api(token_key) -> APIClient:
    """An API client holding a token for `service` only."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")
    return client


@pytest.fixture(autouse=True)
def _no_copies_from_earlier_tests() -> None:
    """The lean reads' per-process copies (apps/api/reads.py) start empty in every test."""
    from apps.api import reads

    reads.forget()


@pytest.fixture
def one_window(monkeypatch):
    """The rate limits' clock stopped mid-window: a count made over several requests is not
    reset by a minute turning between them, nor a 429's "try again in N seconds" changed by a
    second turning between two answers compared byte for byte."""
    from apps.api import throttling

    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: 1_800_000_030.0))

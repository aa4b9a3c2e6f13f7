"""The API tests' fixtures: the production cache (Redis) and a count of its round trips."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def redis_cache(settings, redis_url):
    """The production cache: Redis through apps.core.cache.RedisCache, a key prefix of its own."""
    from rolloutdesk.settings import default_cache

    settings.CACHES = {
        "default": {**default_cache("", redis_url), "KEY_PREFIX": f"rd-test-{uuid.uuid4().hex}"}
    }
    from django.core.cache import caches

    yield caches["default"]
    caches["default"].clear()


def round_trips(backend) -> list:
    """Counts every Redis round trip of `backend`: each takes a connection from its pool."""
    pool = backend._cache.get_client(write=True).connection_pool
    taken = []
    original = pool.get_connection

    def get_connection(*args, **kwargs):
        taken.append(args)
        return original(*args, **kwargs)

    pool.get_connection = get_connection
    return taken


def assert_same(one, other) -> None:
    """Two answers alike byte for byte: status, body and every header."""
    assert one.status_code == other.status_code
    assert one.content == other.content
    assert sorted(one.items()) == sorted(other.items())

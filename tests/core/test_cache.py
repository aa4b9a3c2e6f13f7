"""The Redis cache backend (apps/core/cache.py): one client per pool, Django's behaviour."""

from __future__ import annotations

import uuid

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

from apps.core.cache import RedisCache, count
from rolloutdesk.settings import default_cache


def test_one_client_serves_every_call_and_counts_as_djangos(redis_url):
    params = default_cache("", redis_url)
    assert params["BACKEND"] == "apps.core.cache.RedisCache"
    options = {"KEY_PREFIX": f"rd-test-{uuid.uuid4().hex}", "TIMEOUT": 60}
    ours = RedisCache(params["LOCATION"], options)
    django = DjangoRedisCache(params["LOCATION"], options)
    assert ours._cache.get_client() is ours._cache.get_client(write=True)
    assert django._cache.get_client() is not django._cache.get_client()  # why ours exists
    key = "hardening:api:token-1:1"
    assert ours.add(key, 1, timeout=30) and not django.add(key, 1, timeout=30)
    assert [ours.incr(key), django.incr(key), ours.get(key)] == [2, 3, 3]
    ours.delete(key)
    assert django.get(key) is None


def test_count_is_one_round_trip_that_starts_at_one_and_expires(redis_url, settings):
    settings.CACHES = {
        "default": {**default_cache("", redis_url), "KEY_PREFIX": f"rd-test-{uuid.uuid4().hex}"}
    }
    from django.core.cache import caches

    backend = caches["default"]
    sent = []
    client = backend._cache.get_client(write=True)
    original = client.pipeline

    def pipeline(*args, **kwargs):
        pipe = original(*args, **kwargs)
        sent.append(pipe)
        return pipe

    client.pipeline = pipeline
    assert [count("hardening:api:token-7:1", timeout=30) for _ in range(3)] == [1, 2, 3]
    assert len(sent) == 3  # one pipeline (round trip) per count
    assert backend.get("hardening:api:token-7:1") == 3
    assert 0 < client.ttl(backend.make_key("hardening:api:token-7:1")) <= 30
    backend.delete("hardening:api:token-7:1")


def test_count_falls_back_to_add_and_incr_on_other_caches(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert [count("c", timeout=30) for _ in range(3)] == [1, 2, 3]

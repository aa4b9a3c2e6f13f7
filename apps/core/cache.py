"""Django's Redis cache, with one client per connection pool instead of one per operation.

Django's RedisCacheClient.get_client builds a new `redis.Redis` for every cache call; redis-py
fills ~250 response callbacks into each new client, about 0.3 ms of CPU (cProfile, redis 8).
Every API request makes three such calls (the bad-token block check, the rate limit's add and
incr), which cost more than the lean read itself (docs/performance.md, "After the lean read
path"). A `redis.Redis` over a pool is safe to share between threads, and its pool reconnects
after a fork (redis-py checks the process id), so one client per pool serves every call.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    """settings.CACHES' backend when the cache is Redis (rolloutdesk/settings.py default_cache)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

    def count(self, key: str, timeout: int) -> int:
        """`count` in one round trip: create the counter at 0 with its expiry if missing, add one.
        (Django's add-then-incr is three: SET NX, EXISTS, INCR.)"""
        key = self.make_and_validate_key(key)
        with self._cache.get_client(key, write=True).pipeline(transaction=False) as pipe:
            pipe.set(key, 0, ex=timeout, nx=True)
            pipe.incr(key)
            return int(pipe.execute()[1])


def count(key: str, timeout: int) -> int:
    """Add one to the counter `key` of the default cache (made to live `timeout` seconds when
    missing) and return its new value: the rate limits' one cache operation per request."""
    target = caches["default"]
    if isinstance(target, RedisCache):
        return target.count(key, timeout)
    return 1 if target.add(key, 1, timeout=timeout) else target.incr(key)

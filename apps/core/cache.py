"""Django's Redis cache, with one client per connection pool instead of one per operation.

Django's RedisCacheClient.get_client builds a new `redis.Redis` for every cache call; redis-py
fills ~250 response callbacks into each new client, about 0.3 ms of CPU (cProfile, redis 8).
Every API request made three such calls (the bad-token block check, the rate limit's add and
incr), which cost more than the lean read itself (docs/performance.md, "After the lean read
path"). A `redis.Redis` over a pool is safe to share between threads, and its pool reconnects
after a fork (redis-py checks the process id), so one client per pool serves every call.

`count` makes the rate limit's add-and-increment one round trip, and `count_unless` adds the
bad-token block check to it for the lean reads: one round trip per answer.
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


# count_unless on Redis: read the guard counter, and count only below its limit, atomically.
# The counters hold plain integers (Django's serializer stores an int as is; INCR makes them).
COUNT_UNLESS = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return -1 end
redis.call('SET', KEYS[2], 0, 'EX', ARGV[2], 'NX')
return redis.call('INCR', KEYS[2])
"""


class RedisCache(DjangoRedisCache):
    """settings.CACHES' backend when the cache is Redis (rolloutdesk/settings.py default_cache)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
        self._count_unless: Any = None

    def count_unless(self, guard: str, limit: int, key: str, timeout: int) -> int | None:
        """`count_unless` in one round trip (a script: EVALSHA, loaded once per client)."""
        guard = self.make_and_validate_key(guard)
        key = self.make_and_validate_key(key)
        client = self._cache.get_client(key, write=True)
        if self._count_unless is None or self._count_unless.registered_client is not client:
            self._count_unless = client.register_script(COUNT_UNLESS)
        made = int(self._count_unless(keys=[guard, key], args=[limit, timeout]))
        return None if made < 0 else made

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


def count_unless(guard: str, limit: int, key: str, timeout: int) -> int | None:
    """`count(key, timeout)`, unless the counter `guard` has reached `limit`: then None, and
    nothing is counted. One round trip on Redis (the lean API reads' bad-token block and rate
    count, apps/api/throttling.admit_token_read); two operations on other caches."""
    target = caches["default"]
    if isinstance(target, RedisCache):
        return target.count_unless(guard, limit, key, timeout)
    if (target.get(guard) or 0) >= limit:
        return None
    return count(key, timeout)

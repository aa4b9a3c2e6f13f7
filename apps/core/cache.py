"""Django's Redis cache, with one client per connection pool instead of one per operation.

Django's RedisCacheClient.get_client builds a new `redis.Redis` for every cache call; redis-py
fills ~250 response callbacks into each new client, about 0.3 ms of CPU (cProfile, redis 8).
Every API request made three such calls (the bad-token block check, the rate limit's add and
incr), which cost more than the lean read itself (docs/performance.md, "After the lean read
path"). A `redis.Redis` over a pool is safe to share between threads, and its pool reconnects
after a fork (redis-py checks the process id), so one client per pool serves every call.

`count` makes the rate limit's add-and-increment one round trip, and `count_unless` adds the
bad-token block check to it for the lean reads; `admit` adds the stamps of the copies the lean
reads keep (apps/core/stamps.py): one round trip per answer.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


def fresh_stamp() -> str:
    """A new stamp (apps/core/stamps.py): random, so one made again after it expired differs from
    every earlier one."""
    return secrets.token_hex(8)


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


# One round trip for the API's hot reads (count_unless, admit): read the guard counter and answer
# -1 if it reached its limit; else count (when ARGV[3] is 1; the counters hold
# plain integers: Django's serializer stores an int as is, INCR makes them) and return the
# stamps of KEYS[3:], making each missing one with its fresh value from ARGV[5:] (made by the
# caller, so each is random whatever Redis seeds its scripts with).
ADMIT = """
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return {-1} end
local made = 0
if ARGV[3] == '1' then
  redis.call('SET', KEYS[2], 0, 'EX', ARGV[2], 'NX')
  made = redis.call('INCR', KEYS[2])
end
local out = {made}
for i = 3, #KEYS do
  local stamp = redis.call('GET', KEYS[i])
  if not stamp then
    stamp = ARGV[i + 2]
    redis.call('SET', KEYS[i], stamp, 'EX', ARGV[4])
  end
  out[#out + 1] = stamp
end
return out
"""


class RedisCache(DjangoRedisCache):
    """settings.CACHES' backend when the cache is Redis (rolloutdesk/settings.py default_cache)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
        self._admit: Any = None

    def count_unless(self, guard: str, limit: int, key: str, timeout: int) -> int | None:
        """`count_unless` in one round trip."""
        admitted = self.admit(guard, limit, key, timeout)
        return None if admitted is None else admitted[0]

    def admit(
        self,
        guard: str,
        limit: int,
        key: str | None,
        timeout: int,
        stamps: list[str] = (),
        ttl: int = 0,
    ) -> tuple[int, list[bytes]] | None:
        """In one round trip (a script: EVALSHA, loaded once per client): None if the counter
        `guard` reached `limit`, and nothing is counted; else the count of `key` after adding
        one (0 if `key` is None: not counted) and the values of the `stamps` keys, each missing
        one made with a fresh value for `ttl` seconds (apps/core/stamps.py)."""
        guard = self.make_and_validate_key(guard)
        counter = self.make_and_validate_key(key) if key is not None else guard
        names = [self.make_and_validate_key(name) for name in stamps]
        client = self._cache.get_client(counter, write=True)
        if self._admit is None or self._admit.registered_client is not client:
            self._admit = client.register_script(ADMIT)
        out = self._admit(
            keys=[guard, counter, *names],
            args=[limit, timeout, 0 if key is None else 1, ttl, *(fresh_stamp() for _ in names)],
        )
        made = int(out[0])
        return None if made < 0 else (made, out[1:])

    def replace_stamps(self, stamps: list[str], ttl: int) -> None:
        """Give each of these stamp keys a fresh random value, in one round trip."""
        with self._cache.get_client(write=True).pipeline(transaction=False) as pipe:
            for name in stamps:
                pipe.set(self.make_and_validate_key(name), fresh_stamp(), ex=ttl)
            pipe.execute()

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

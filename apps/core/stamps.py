"""Stamps: how a web process keeps a copy of a row between requests and sees that it changed.

The API's hot reads (apps/api/reads.py) keep, in each process, the token a key names and the
release's kept verdict, so that a poll costs no database round trip. Each copy is checked on
every request against a **stamp** in the shared Redis cache, read in the same round trip as the
rate count: an opaque value that every change of the row replaces. Whatever changes such a row
calls `changed()` in its transaction.

Why a reader never keeps a stale copy for long:
- A reader takes the stamp *before* it reads the row from the database, and keeps the copy
  under that stamp. A change committed after the stamp was read is followed by a new stamp
  (`changed()` replaces it again once the transaction commits), so the copy is dropped at the
  next request. A change committed before the stamp was read is in what the reader read.
- `changed()` also replaces the stamp at once, inside the transaction: a reader in the same
  transaction (the tests' transactions never commit) and any reader that took the stamp before
  it sees the change as soon as it commits, without waiting for the commit hook.
- What the stamps cannot see (a process dying between the commit and its hook, a bulk UPDATE that
  forgot to call `changed()`, Redis out of reach while a writer wrote) is bounded by the copies'
  age: API_READ_CACHE_SECONDS (10 s by default) after which a copy is read again regardless.

Stamps need a cache every process shares: they are kept only on Redis (apps.core.cache's
RedisCache, the default when the broker is Redis). On any other cache the readers keep nothing.
A stamp missing (never made, expired, the cache flushed) is made by the next reader with a fresh
random value, so a copy made under an earlier stamp cannot match it by chance: a stamp may
expire (`TTL`, a day) without harm.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction

from .cache import RedisCache

logger = logging.getLogger(__name__)

# How long a stamp is kept after it was made (by a change or the first reader).
TTL = 86_400

# What stamps name: an API token by its key's hash, a kept verdict by its release.
TOKEN = "token"
KEPT = "kept"


def key(kind: str, ident: object) -> str:
    return f"stamp:{kind}:{ident}"


def shared() -> RedisCache | None:
    """The shared cache holding the stamps, or None when copies must not be kept."""
    backend = caches["default"]
    if settings.API_READ_CACHE_SECONDS <= 0 or not isinstance(backend, RedisCache):
        return None
    return backend


def changed(kind: str, idents: Iterable[object]) -> None:
    """These rows of `kind` change in the current transaction: replace their stamps now and
    again once it commits (outside a transaction, once: the change has committed). Never fails
    the change."""
    backend = shared()
    names = [key(kind, ident) for ident in idents]
    if backend is None or not names:
        return
    if connection.in_atomic_block:
        _replace(backend, names)
    transaction.on_commit(lambda: _replace(backend, names), robust=True)


def _replace(backend: RedisCache, names: list[str]) -> None:
    try:
        backend.replace_stamps(names, TTL)
    except Exception:  # the change stands; the readers' copies age out (API_READ_CACHE_SECONDS)
        logger.warning("Cache unavailable; %d stamp(s) not replaced", len(names))

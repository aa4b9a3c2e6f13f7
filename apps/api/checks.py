"""`check --deploy`: the rate-limit counters must be shared by every web process."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

# Backends whose counts live inside one process: with N gunicorn workers an address gets N
# times its allowance, and a blocked one is still let through (password checked) by the others.
PER_PROCESS = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@register(Tags.security, deploy=True)
def rate_limits_are_shared(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Warn when the cache that holds the rate-limit counters is per process."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PER_PROCESS:
        return []
    return [
        Warning(
            f"The rate-limit counters live in {backend.rsplit('.', 1)[-1]}, one per web process: "
            "each gunicorn worker counts failed sign-ins and bad tokens on its own.",
            hint="Use a Redis broker (its server then holds the counters) or set CACHE_URL to a "
            "shared cache, e.g. redis://host:6379/2 or dbcache://rolloutdesk_cache after "
            "`manage.py createcachetable` (docs/security.md).",
            id="api.W001",
        )
    ]

"""The provider's configuration, read once from its discovery document and kept an hour.

mozilla-django-oidc wants each endpoint as a setting; OIDC_ISSUER is all a deploy gives, so the
endpoints come from `{issuer}/.well-known/openid-configuration`. The document must name the
same issuer (OpenID Connect Discovery 1.0, section 4.3): a document that claims another issuer
could hand out another provider's keys.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from mozilla_django_oidc.utils import import_from_settings

# mozilla-django-oidc setting -> discovery document field.
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
DISCOVERY_TTL_SECONDS = 3600

_lock = threading.Lock()
_cached: dict[str, Any] = {}


class DiscoveryError(ImproperlyConfigured):
    """The provider's discovery document could not be read or does not fit OIDC_ISSUER."""


def enabled() -> bool:
    """Whether single sign-on is configured (OIDC_ISSUER set)."""
    return bool(settings.OIDC_ISSUER)


def issuer() -> str:
    return settings.OIDC_ISSUER.rstrip("/")


def discovery_url() -> str:
    return f"{issuer()}/.well-known/openid-configuration"


def metadata(*, refresh: bool = False) -> dict[str, Any]:
    """The provider's discovery document (fetched at most once an hour per process)."""
    with _lock:
        fresh = _cached.get("issuer_configured") == issuer() and (
            time.monotonic() - _cached.get("at", 0) < DISCOVERY_TTL_SECONDS
        )
        if fresh and not refresh:
            return _cached["document"]
        try:
            response = requests.get(discovery_url(), timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise DiscoveryError(
                f"Could not read the OpenID provider's discovery document at {discovery_url()}: "
                f"{exc}"
            ) from exc
        if str(document.get("issuer", "")).rstrip("/") != issuer():
            raise DiscoveryError(
                f"The discovery document at {discovery_url()} names the issuer "
                f"{document.get('issuer')!r}, not OIDC_ISSUER {issuer()!r}."
            )
        missing = [f for f in (*ENDPOINTS.values(), "issuer") if not document.get(f)]
        if missing:
            raise DiscoveryError(
                f"The discovery document at {discovery_url()} lacks {', '.join(missing)}."
            )
        _cached.update(document=document, at=time.monotonic(), issuer_configured=issuer())
        return document


def known_metadata() -> dict[str, Any]:
    """The discovery document if this process has read it already ({} if not): never fetches."""
    with _lock:
        if _cached.get("issuer_configured") != issuer():
            return {}
        return dict(_cached.get("document") or {})


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def form_targets() -> list[str]:
    """The provider's origins a form of ours ends at: signing in (a GET form redirected to the
    authorization endpoint) and signing out (a POST redirected to the end-session endpoint)."""
    document = known_metadata()
    urls = [issuer(), document.get("authorization_endpoint"), document.get("end_session_endpoint")]
    return sorted({origin(u) for u in urls if u and origin(u)})


def forget() -> None:
    """Drop the cached document (tests, and a provider that moved its endpoints)."""
    with _lock:
        _cached.clear()


def setting(attr: str, *default: Any) -> Any:
    """A mozilla-django-oidc setting: endpoints from discovery, the rest from settings."""
    if attr in ENDPOINTS:
        return metadata()[ENDPOINTS[attr]]
    return import_from_settings(attr, *default)

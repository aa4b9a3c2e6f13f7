"""Rate limits: failed sign-ins and bad API tokens per client address, and API requests per caller.

Counters live in Django's cache, which every web process and machine must share: CACHE_URL, or
by default the Redis broker's server (rolloutdesk/settings.py default_cache). A per-process cache
gives each gunicorn worker an allowance of its own and lets a blocked address have its passwords
checked by the others; `check --deploy` warns about it (checks.py). A cache that fails never
takes the site down with it: the limit is then not applied, and the failure is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from apps.core.cache import RedisCache, count, count_unless
from apps.core.stamps import TTL as STAMP_TTL

from .authentication import TokenPrincipal

logger = logging.getLogger(__name__)

LOGIN_PATHS = ("/accounts/login/", "/admin/login/")
API_PREFIX = "/api/"
# OFREP takes the same tokens (apps/api/views_ofrep.py), also in its own X-API-Key header.
OFREP_PREFIX = "/ofrep/"


def client_address(request: HttpRequest) -> str:
    """The caller's address; behind the proxy, its last X-Forwarded-For hop when trusted."""
    if settings.HARDENING_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"


@dataclass(frozen=True)
class Window:
    """At most `limit` failures per `seconds` from one address, then refused until it ends."""

    name: str
    limit: int
    seconds: int

    def key(self, address: str) -> str:
        bucket = int(time.time()) // self.seconds
        return f"hardening:{self.name}:{address}:{bucket}"

    def retry_after(self) -> int:
        return self.seconds - int(time.time()) % self.seconds or 1

    def blocked(self, address: str) -> bool:
        try:
            return (cache.get(self.key(address)) or 0) >= self.limit
        except Exception:  # a cache outage must not lock everyone out (or in): log it
            logger.warning("Rate-limit cache unavailable; %s not checked", self.name)
            return False

    def fail(self, address: str) -> int:
        try:
            return count(self.key(address), timeout=self.seconds + 5)
        except Exception:  # as above
            logger.warning("Rate-limit cache unavailable; %s not counted", self.name)
            return 0


def token_window() -> Window:
    return Window("token", settings.HARDENING_FAILED_TOKEN_LIMIT, settings.HARDENING_WINDOW_SECONDS)


def login_window() -> Window:
    return Window("login", settings.HARDENING_FAILED_LOGIN_LIMIT, settings.HARDENING_WINDOW_SECONDS)


def _too_many(request: HttpRequest, window: Window, what: str) -> HttpResponse:
    retry = window.retry_after()
    message = f"Too many {what} from this address; try again in {retry} seconds."
    if request.path.startswith(API_PREFIX):
        response: HttpResponse = JsonResponse({"detail": message}, status=429)
    elif request.path.startswith(OFREP_PREFIX):
        response = JsonResponse({"errorCode": "GENERAL", "errorDetails": message}, status=429)
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(retry)
    return response


# A guard key no address's count is ever kept under: an unblocked read of admit_stamped's
# script when the request has no address left to check.
NOT_BLOCKED = "hardening:token:none"
# The request attribute holding the address whose bad-token block is still to be checked, when
# the middleware left the check to a view that makes it with its rate count (checks_token_block).
PENDING_BLOCK = "rolloutdesk_token_block_address"


class FailedAuthThrottleMiddleware:
    """Refuse an address (429, Retry-After) that sent too many bad API tokens or failed sign-ins.

    Counted after the fact: an API answer of 401 to a request carrying a token, a sign-in POST
    answered with the form again (Django's login views redirect only on success). While an
    address is blocked, even a correct token or password from it is refused, so guessing cannot
    go on at a slower pace inside the window.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        address = client_address(request)
        is_token = (
            request.path.startswith(API_PREFIX) and "HTTP_AUTHORIZATION" in request.META
        ) or (
            request.path.startswith(OFREP_PREFIX)
            and ("HTTP_AUTHORIZATION" in request.META or "HTTP_X_API_KEY" in request.META)
        )
        is_login = request.method == "POST" and request.path in LOGIN_PATHS
        if is_token:
            # Checked in process_view, once the view is known (or by the view itself).
            setattr(request, PENDING_BLOCK, address)
        if is_login and login_window().blocked(address):
            return _too_many(request, login_window(), "failed sign-ins")
        response = self.get_response(request)
        if is_token and response.status_code == 401:
            if token_window().fail(address) == token_window().limit:
                logger.warning("Address %s blocked after repeated invalid API tokens", address)
        elif is_login and response.status_code == 200:
            if login_window().fail(address) == login_window().limit:
                logger.warning("Address %s blocked after repeated failed sign-ins", address)
        return response

    def process_view(self, request: HttpRequest, view: Any, *args: Any) -> HttpResponse | None:
        """Refuse a blocked address before the view runs, unless the view checks the block
        itself in the same round trip as its rate count (the lean reads, OFREP)."""
        # A class-based view's function carries its class (as_view()).
        if getattr(getattr(view, "view_class", view), "checks_token_block", False):
            return None
        return refuse_blocked_token(request)


def refuse_blocked_token(request: HttpRequest) -> HttpResponse | None:
    """429 when the request carries a token from an address blocked for bad tokens and that is
    not yet checked; None otherwise. Checked once per request."""
    address = getattr(request, PENDING_BLOCK, None)
    if address is None:
        return None
    setattr(request, PENDING_BLOCK, None)
    if token_window().blocked(address):
        return _too_many(request, token_window(), "invalid API tokens")
    return None


# The request attribute holding the rate count a lean read made: DRF, answering the request after
# all, takes it instead of counting the request a second time (ApiRateThrottle.allow_request).
COUNTED = "rolloutdesk_api_count"


def admit_token_read(
    request: HttpRequest, caller: str, throttle: ApiRateThrottle | None = None
) -> HttpResponse | bool:
    """The lean reads' cache checks in one round trip: the address's bad-token block (left by
    the middleware to the view) and the token's rate count, which a blocked request does not
    add to. A 429 response when the address is blocked; else whether the token is within its
    rate (False: the caller answers its 429, with `throttle`'s wait())."""
    throttle = throttle or ApiRateThrottle()
    address = getattr(request, PENDING_BLOCK, None)
    if address is None or throttle.limit is None:
        refused = refuse_blocked_token(request)
        if refused is not None:
            return refused
        made = throttle.count_caller(caller)
        if made is None:
            return True
        setattr(request, COUNTED, made)  # a refusal is DRF's to answer, without a second count
        return throttle.within(made)
    setattr(request, PENDING_BLOCK, None)
    window = token_window()
    try:
        made = count_unless(window.key(address), window.limit, throttle.key(caller),
                            throttle.seconds + 5)  # fmt: skip
    except Exception:  # as in allow_caller: an outage neither blocks nor limits
        logger.warning("Rate-limit cache unavailable; API rate and token block not checked")
        return True
    if made is None:
        return _too_many(request, window, "invalid API tokens")
    setattr(request, COUNTED, made)
    return throttle.within(made)


def admit_stamped(
    request: HttpRequest, backend: RedisCache, caller: str | None, stamps: list[str]
) -> HttpResponse | tuple[bool | None, list[bytes] | None]:
    """`admit_token_read` with the `stamps` of the copies a lean read keeps, read in the same
    round trip (apps/core/stamps.py); `caller` None: the token is not known yet, nothing is
    counted. A 429 response when the address is blocked; else (whether the token is within its
    rate, None if not counted; the stamps' values, None if the cache could not be reached)."""
    throttle = ApiRateThrottle()
    address = getattr(request, PENDING_BLOCK, None)
    setattr(request, PENDING_BLOCK, None)
    window = token_window()
    counter = caller is not None and throttle.limit is not None
    try:
        admitted = backend.admit(
            window.key(address) if address is not None else NOT_BLOCKED,
            window.limit if address is not None else 1,
            throttle.key(caller) if counter else None,
            throttle.seconds + 5 if counter else 0,
            stamps,
            STAMP_TTL,
        )
    except Exception:  # as in allow_caller: an outage neither blocks nor limits
        logger.warning("Rate-limit cache unavailable; API rate and token block not checked")
        return (True if caller is not None else None), None
    if admitted is None:
        return _too_many(request, window, "invalid API tokens")
    made, values = admitted
    if not counter:
        return (True if caller is not None else None), values
    setattr(request, COUNTED, made)
    return throttle.within(made), values


class ApiRateThrottle(BaseThrottle):
    """Requests per period for each API token, person or (unauthenticated) address: 429 beyond.

    The rate is API_RATE_LIMIT ("6000/minute" by default; "" turns it off). A fixed window
    counted with one cache increment per request (apps.core.cache.count, one round trip to
    Redis; DRF's own throttles keep a list of every request's time, which grows with the
    rate); DRF adds Retry-After to the 429.
    """

    def __init__(self) -> None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get("api")
        self.limit, self.seconds = parse_rate(rate) if rate else (None, None)
        self.retry = 0

    def allow_request(self, request: Any, view: Any) -> bool:
        made = getattr(request, COUNTED, None)  # counted already by a lean read that gave up
        if made is not None and self.limit is not None:
            return self.within(made)
        return self.allow_caller(_caller(request))

    def allow_caller(self, caller: str) -> bool:
        """Count one request of `caller` (`_caller`'s names); False beyond the rate."""
        made = self.count_caller(caller)
        return True if made is None else self.within(made)

    def count_caller(self, caller: str) -> int | None:
        """Count one request of `caller`: the how-manieth of the window it is; None when there
        is no limit or the cache could not count. Also the lean reads' (apps/api/reads.py)
        count, which knows the token but builds no request.user."""
        if self.limit is None:
            return None
        try:
            return count(self.key(caller), timeout=self.seconds + 5)
        except Exception:  # a cache outage must not answer 500 to every API call
            logger.warning("Rate-limit cache unavailable; API rate not checked")
            return None

    def key(self, caller: str) -> str:
        """The counter of `caller`'s requests in the current window."""
        return f"hardening:api:{caller}:{int(time.time()) // self.seconds}"

    def within(self, made: int) -> bool:
        """Whether the `made`th request of the window is within the rate."""
        if made <= self.limit:
            return True
        self.retry = self.seconds - int(time.time()) % self.seconds or 1
        return False

    def wait(self) -> float | None:
        return self.retry or None


def parse_rate(rate: str) -> tuple[int, int]:
    """ "600/minute" -> (600, 60); the period is second, minute, hour or day (first letter)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[:1].lower()]
    return int(count), seconds


def _caller(request: Any) -> str:
    user = getattr(request, "user", None)
    if isinstance(user, TokenPrincipal):
        return token_caller(user.token.pk)
    if user is not None and user.is_authenticated:
        return f"user-{user.pk}"
    return f"addr-{client_address(request)}"


def token_caller(token_pk: int) -> str:
    """The name a token's requests are counted under."""
    return f"token-{token_pk}"

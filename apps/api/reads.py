"""The lean read path: `GET releases/{id}/gate/` and `traffic/` as CI polls them, from a copy.

CI pipelines poll these two endpoints; apps routing traffic may ask on their own request path.
Through DRF one answer cost ~5.7 ms of CPU (the token's query and the release's, each built by
the ORM, then DRF's request, negotiation and response), eight times the framework floor
(docs/performance.md). This path answers the plain poll — a GET with no query string, a
well-formed `Authorization: Token <key>`, JSON accepted — and hands everything else to the DRF
action unchanged (`fallback`): a long poll (`?wait=`), any other parameter, a person's session,
a bad or revoked token (401), a release that does not exist (404) or belongs to another service
(403), a kept row missing or due (recomputed there), the browsable API, a request over the rate
limit.

How a plain poll is answered:
- **From this process's copies** of the token (its id, last use and the services it was seen to
  reach) and of the release's kept verdict (with its answers rendered once), when both are
  younger than API_READ_CACHE_SECONDS and their stamps in Redis, read in the one round trip that
  also checks the address's bad-token block and counts the rate, are the ones they were kept
  under. No database round trip. Every change of a token or a kept verdict replaces its stamp
  (apps/core/stamps.py, which says why a copy is never kept stale): a revocation is seen by the
  next request.
- **Else with one query** joining the token, its scope and the kept row (`kept_for_token`), read
  after the stamps, and the copies are kept under those stamps. Without a Redis cache nothing is
  kept and every poll is this query.

What it keeps from the DRF path, each from the same place: the token's key parsing and "used"
mark (authentication.token_key / note_use), which tokens count (ApiToken.objects.usable(): not
revoked, `USABLE` below is that filter, tests/api/test_lean_reads.py holds them equal), the rate
limit (throttling.ApiRateThrottle, same counter, counted once: DRF takes the count a lean read
made when it answers after all), the answer (KeptVerdict.gate_document / .traffic, rendered by
DRF's JSONRenderer), the ETag and 304 rule (views.etag_matches) and the headers.
tests/api/test_lean_reads.py asserts byte-identical answers with API_LEAN_READS on and off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework.renderers import JSONRenderer

from apps.core import stamps
from apps.releases.models import Release
from apps.rollouts.models import KeptVerdict

from .authentication import note_use, token_key
from .models import ApiToken, hash_key
from .throttling import admit_stamped, admit_token_read, refuse_blocked_token, token_caller
from .views import etag_matches

# What DRF answers these actions with besides the body (APIView.default_response_headers: the
# action's methods; Vary because the browsable API is a second renderer).
DRF_HEADERS = {"Vary": "Accept", "Allow": "GET, HEAD, OPTIONS"}
# The Accept headers DRF's negotiation answers with JSON (its first renderer) that we serve.
JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})
# Longer ids (past PostgreSQL's integer) are DRF's to refuse.
MAX_ID_DIGITS = 9
# ApiToken.objects.usable() as SQL (checked equal to the queryset's filter by the tests).
USABLE = '"revoked_at" IS NULL'

_token = ApiToken._meta
_through = ApiToken.services.through._meta
_kept = KeptVerdict._meta
# One round trip: the token (if usable), whether it may see the release, and the kept row.
# Missing release or row: NULLs, and DRF answers (404, or the row recomputed).
QUERY = f"""
SELECT t."id", t."last_used_at", r."service_id",
       EXISTS (SELECT 1 FROM "{_through.db_table}" s
               WHERE s."{_through.get_field("apitoken").column}" = t."id"
                 AND s."{_through.get_field("service").column}" = r."service_id"),
       k."version", k."payload", k."traffic", k."computed_at", k."next_change_at"
FROM "{_token.db_table}" t
LEFT JOIN "{Release._meta.db_table}" r ON r."id" = %s
LEFT JOIN "{_kept.db_table}" k ON k."release_id" = r."id"
WHERE t."key_hash" = %s AND t.{USABLE}
"""  # noqa: S608 - table and column names from the models' _meta, values as parameters


# The row's datetimes as the ORM would give them: SQLite (the embedded mode) hands them over as
# naive text, PostgreSQL as aware datetimes. The fields' own converters, as a queryset runs them.
_DATETIMES = (_token.get_field("last_used_at"), _kept.get_field("computed_at"),
              _kept.get_field("next_change_at"))  # fmt: skip


def _as_orm(field: Any, value: Any) -> Any:
    if value is None:
        return None
    col = field.get_col(field.model._meta.db_table)
    for convert in connection.ops.get_db_converters(col) + field.get_db_converters(connection):
        value = convert(value, col, connection)
    return value


def kept_for_token(key_hash: str, release_id: int) -> tuple[int, Any, int, KeptVerdict] | None:
    """(token id, its last use, the release's service, its kept verdict) when the usable token
    of this key hash may read the release and its kept row exists; None for anything DRF must
    answer."""
    with connection.cursor() as cursor:
        cursor.execute(QUERY, [release_id, key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    token_id, last_used_at, service_id, in_scope, version, payload, traffic, at, next_at = row
    if service_id is None or not in_scope or version is None:
        return None
    if connection.vendor != "postgresql":
        last_used_at, at, next_at = (
            _as_orm(f, v) for f, v in zip(_DATETIMES, (last_used_at, at, next_at), strict=True)
        )
    # JSONField's own decoding (the backend hands jsonb over as text): same dicts, same order.
    kept = KeptVerdict(
        release_id=release_id,
        version=version,
        payload=json.loads(payload) if isinstance(payload, str) else payload,
        traffic=json.loads(traffic) if isinstance(traffic, str) else traffic,
        computed_at=at,
        next_change_at=next_at,
    )
    return token_id, last_used_at, service_id, kept


# --- the copies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenCopy:
    """What a poll needs of its token, as read under `stamp`."""

    token_id: int
    last_used_at: Any
    services: frozenset[int]  # the services it was seen to reach (a release of another: a query)
    stamp: bytes
    until: float  # time.monotonic() after which it is read again regardless


@dataclass(slots=True)
class KeptCopy:
    """A release's kept verdict and service, as read under `stamp`, with its answers' bodies."""

    kept: KeptVerdict
    service_id: int
    stamp: bytes
    until: float
    bodies: dict[str, bytes] = field(default_factory=dict)  # "gate"/"traffic", rendered once

    def body(self, endpoint: str) -> bytes:
        rendered = self.bodies.get(endpoint)
        if rendered is None:
            kept = self.kept
            document = kept.gate_document() if endpoint == "gate" else kept.traffic
            rendered = self.bodies[endpoint] = JSONRenderer().render(document)
        return rendered


# This process's copies, by key hash and by release. A sync worker serves one request at a time;
# under threads each read or write of a dict is atomic and a copy is never changed in place
# (but for its bodies, which any thread renders the same). Bounded: past the limit, forgotten.
_tokens: dict[str, TokenCopy] = {}
_kept: dict[int, KeptCopy] = {}
MAX_TOKENS = 1_000
MAX_KEPT = 10_000


def forget() -> None:
    """Drop this process's copies (the next polls read the database again)."""
    _tokens.clear()
    _kept.clear()


def _copies(key_hash: str, release_id: int, now: Any) -> tuple[TokenCopy | None, KeptCopy | None]:
    """The copies a poll may be answered from, if their stamps hold: both, or neither."""
    token = _tokens.get(key_hash)
    copy = _kept.get(release_id)
    if token is None or copy is None:
        return None, None
    moment = time.monotonic()
    if (
        token.until < moment
        or copy.until < moment
        or copy.service_id not in token.services
        or copy.kept.is_due(now)
    ):
        return None, None
    return token, copy


def _keep(key_hash: str, token: TokenCopy, release_id: int, copy: KeptCopy) -> None:
    if len(_tokens) >= MAX_TOKENS and key_hash not in _tokens:
        _tokens.clear()
    if len(_kept) >= MAX_KEPT and release_id not in _kept:
        _kept.clear()
    _tokens[key_hash] = token
    _kept[release_id] = copy


# --- the answer -----------------------------------------------------------------------------


def answer(request: HttpRequest, release_id: int, endpoint: str) -> HttpResponse | None:
    """The lean answer to a plain poll of `endpoint` ("gate" or "traffic"), or None: DRF's."""
    if (
        not settings.API_LEAN_READS
        or len(str(release_id)) > MAX_ID_DIGITS
        or request.method != "GET"
        or request.META.get("QUERY_STRING")
        or request.META.get("HTTP_ACCEPT", "") not in JSON_ACCEPTS
    ):
        return None
    key = token_key(request)
    if key is None:
        return None
    key_hash = hash_key(key)
    now = timezone.now()
    backend = stamps.shared()
    seen: list[bytes] | None = None  # the stamps, read before the database (None: keep nothing)
    counted = False
    if backend is not None:
        token, copy = _copies(key_hash, release_id, now)
        names = [stamps.key(stamps.TOKEN, key_hash), stamps.key(stamps.KEPT, release_id)]
        # Counted here only when the copies will likely answer; else once the query found the token.
        caller = token_caller(token.token_id) if token is not None else None
        admitted = admit_stamped(request, backend, caller, names)
        if isinstance(admitted, HttpResponse):
            return admitted  # the address is blocked for bad tokens: 429, as the middleware's
        within, seen = admitted
        if within is False:
            return None  # DRF answers its 429 (with the count made here)
        counted = within is not None
        if token is not None and seen == [token.stamp, copy.stamp]:
            return _respond(request, key_hash, token, copy, endpoint)
    found = kept_for_token(key_hash, release_id)
    if found is None:
        return None
    token_id, last_used_at, service_id, kept = found
    if kept.is_due(now):
        return None
    if not counted:
        admitted = admit_token_read(request, token_caller(token_id))
        if isinstance(admitted, HttpResponse):
            return admitted  # the address is blocked for bad tokens: 429, as the middleware's
        if not admitted:
            return None  # DRF answers its 429 (with the count made here)
    until = time.monotonic() + settings.API_READ_CACHE_SECONDS
    services = frozenset({service_id})
    earlier = _tokens.get(key_hash)
    if seen is not None and earlier is not None and earlier.stamp == seen[0]:
        services |= earlier.services  # the same token as when those were seen
    token = TokenCopy(token_id, last_used_at, services, seen[0] if seen else b"", until)
    copy = KeptCopy(kept, service_id, seen[1] if seen else b"", until)
    if seen is not None:
        _keep(key_hash, token, release_id, copy)
    return _respond(request, key_hash if seen is not None else None, token, copy, endpoint)


def _respond(
    request: HttpRequest, key_hash: str | None, token: TokenCopy, copy: KeptCopy, endpoint: str
) -> HttpResponse:
    """The answer of `copy` to an admitted poll; `key_hash`: the token's copy to update."""
    last_used_at = note_use(token.token_id, token.last_used_at)
    if key_hash is not None and last_used_at is not token.last_used_at:
        _tokens[key_hash] = replace(token, last_used_at=last_used_at)
    kept = copy.kept
    seen = request.headers.get("If-None-Match", "")
    if seen and etag_matches(seen, kept.etag):
        response = HttpResponse(status=304)
        del response["Content-Type"]  # as DRF: an empty body has no type
    else:
        response = HttpResponse(copy.body(endpoint), content_type="application/json")
    response["ETag"] = kept.etag
    response["Cache-Control"] = "no-cache"
    for name, value in DRF_HEADERS.items():
        response[name] = value
    return response


def lean(endpoint: str, fallback: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A view answering plain polls of `endpoint` itself and every other request through
    `fallback`, the router's DRF view of the same path."""

    @csrf_exempt
    def view(request: HttpRequest, pk: str) -> HttpResponse:
        response = answer(request, int(pk), endpoint)
        if response is None:
            # DRF's answer, after the bad-token block check if this view did not reach it.
            response = refuse_blocked_token(request) or fallback(request, pk=pk)
        return response

    # The middleware leaves the bad-token block check to this view: one Redis round trip with
    # the rate count instead of two (apps/api/throttling.admit_token_read).
    view.checks_token_block = True  # type: ignore[attr-defined]
    return view

"""The lean read path: `GET releases/{id}/gate/` and `traffic/` as CI polls them, in one query.

CI pipelines poll these two endpoints; apps routing traffic may ask on their own request path.
Through DRF one answer cost ~5.7 ms of CPU (the token's query and the release's, each built by
the ORM, then DRF's request, negotiation and response), eight times the framework floor
(docs/performance.md). This path answers the plain poll — a GET with no query string, a
well-formed `Authorization: Token <key>`, JSON accepted — with one hand-written query joining
the token, its scope and the release's kept row, and hands everything else to the DRF action
unchanged (`fallback`): a long poll (`?wait=`), any other parameter, a person's session, a bad
or revoked token (401), a release that does not exist (404) or belongs to another service (403),
a kept row missing or due (recomputed there), the browsable API, a request over the rate limit.

What it keeps from the DRF path, each from the same place: the token's key parsing and "used"
mark (authentication.token_key / note_use), which tokens count (ApiToken.objects.usable(): not
revoked, `USABLE` below is that filter, tests/api/test_lean_reads.py holds them equal), the rate
limit (throttling.ApiRateThrottle, same counter; counted with the address's bad-token block
check, which the middleware leaves to this view, in one Redis round trip), the answer
(KeptVerdict.gate_document / .traffic, rendered by DRF's JSONRenderer), the ETag and 304 rule
(views.etag_matches) and the headers. A revocation takes effect at once: nothing here is cached
between requests. tests/api/test_lean_reads.py asserts byte-identical answers with
API_LEAN_READS on and off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework.renderers import JSONRenderer

from apps.releases.models import Release
from apps.rollouts.models import KeptVerdict

from .authentication import note_use, token_key
from .models import ApiToken, hash_key
from .throttling import admit_token_read, refuse_blocked_token, token_caller
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
SELECT t."id", t."last_used_at", r."id" IS NOT NULL,
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


def kept_for_token(key: str, release_id: int) -> tuple[int, Any, KeptVerdict] | None:
    """(token id, its last use, the release's kept verdict) when the usable token of `key` may
    read the release and its kept row exists; None for anything DRF must answer."""
    with connection.cursor() as cursor:
        cursor.execute(QUERY, [release_id, hash_key(key)])
        row = cursor.fetchone()
    if row is None:
        return None
    token_id, last_used_at, exists, in_scope, version, payload, traffic, at, next_at = row
    if not (exists and in_scope) or version is None:
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
    return token_id, last_used_at, kept


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
    found = kept_for_token(key, release_id)
    if found is None:
        return None
    token_id, last_used_at, kept = found
    if kept.is_due(timezone.now()):
        return None
    admitted = admit_token_read(request, token_caller(token_id))
    if isinstance(admitted, HttpResponse):
        return admitted  # the address is blocked for bad tokens: 429, as the middleware's
    if not admitted:
        # DRF counts it once more and answers its 429: the count is past the limit either way.
        return None
    note_use(token_id, last_used_at)
    seen = request.headers.get("If-None-Match", "")
    if seen and etag_matches(seen, kept.etag):
        response = HttpResponse(status=304)
        del response["Content-Type"]  # as DRF: an empty body has no type
    else:
        body = kept.gate_document() if endpoint == "gate" else kept.traffic
        response = HttpResponse(JSONRenderer().render(body), content_type="application/json")
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

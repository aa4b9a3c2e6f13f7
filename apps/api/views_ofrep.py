"""OFREP endpoints, /ofrep/v1/evaluate/flags[/{key}]: read the request, call apps.api.ofrep.

Plain Django views, not DRF: OFREP fixes its own answers (errorCode/errorDetails bodies, a 304
without one), and an application may call these on its own request path, so they skip what DRF
adds around a view (content negotiation, request wrapping, the browsable renderer). What they
share with the API is reused as is: the tokens (apps.api.authentication), the per-caller rate
limit (ApiRateThrottle) and the bad-token throttle (FailedAuthThrottleMiddleware, which counts
/ofrep/ answers of 401 too).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.decorators import method_decorator
from django.utils.http import parse_etags
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from apps.core.actors import Actor
from apps.core.scope import Refused

from . import ofrep
from .authentication import ServiceTokenAuthentication, note_use
from .throttling import ApiRateThrottle, admit_token_read, refuse_blocked_token, token_caller

# The schemes an OFREP provider may send the key in: OFREP's two (Bearer, X-API-Key) and the
# API's own `Token`, so one CI secret works everywhere.
SCHEMES = {"bearer", "token"}
WWW_AUTHENTICATE = 'Bearer realm="rolloutdesk OFREP"'


def _answer(body: dict[str, Any], status: int = 200) -> HttpResponse:
    return HttpResponse(
        json.dumps(body, separators=(",", ":")), status=status, content_type="application/json"
    )


def _key_of(request: HttpRequest) -> str:
    """The API token's key from `Authorization: Bearer|Token <key>` or `X-API-Key: <key>`."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() not in SCHEMES or not key.strip() or " " in key.strip():
            raise AuthenticationFailed(
                "Send the API token as 'Authorization: Bearer <key>' (or 'X-API-Key: <key>')."
            )
        return key.strip()
    key = request.META.get("HTTP_X_API_KEY", "").strip()
    if not key:
        raise AuthenticationFailed(
            "Authentication required: send an API token as 'Authorization: Bearer <key>' or "
            "'X-API-Key: <key>'."
        )
    return key


@method_decorator(csrf_exempt, name="dispatch")
class OFREPView(View):
    """Authenticate the token, apply the API's rate limit, map errors to OFREP's answers."""

    http_method_names = ["post"]
    # FailedAuthThrottleMiddleware leaves the bad-token block check to dispatch() (see there).
    checks_token_block = True

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method.lower() not in self.http_method_names:
            return self.http_method_not_allowed(request, *args, **kwargs)
        key = kwargs.get("key")
        try:
            principal, token = ServiceTokenAuthentication().principal(_key_of(request), note=False)
        except AuthenticationFailed as exc:
            blocked = refuse_blocked_token(request)
            if blocked is not None:
                return blocked
            response = _answer(
                {"errorCode": ofrep.ErrorCode.GENERAL, "errorDetails": str(exc.detail)}, 401
            )
            response["WWW-Authenticate"] = WWW_AUTHENTICATE
            return response
        request.user = principal  # the rate limit counts per token, as for the API
        # The address's bad-token block and the token's rate count in one round trip.
        throttle = ApiRateThrottle()
        admitted = admit_token_read(request, token_caller(token.pk), throttle)
        if isinstance(admitted, HttpResponse):
            return admitted  # the address is blocked for bad tokens
        if not admitted:
            retry = int(throttle.wait() or 1)
            response = _answer(
                {
                    "errorCode": ofrep.ErrorCode.GENERAL,
                    "errorDetails": f"Rate limit reached; retry in {retry} seconds.",
                },
                429,
            )
            response["Retry-After"] = str(retry)
            return response
        note_use(token.pk, token.last_used_at)
        try:
            context = ofrep.parse_context(request.body)
            return super().dispatch(request, principal.actor, context, *args, **kwargs)
        except ofrep.EvaluationError as exc:
            return _answer(exc.as_dict(key), exc.status)
        except Refused as exc:
            body = {"errorCode": ofrep.ErrorCode.GENERAL, "errorDetails": exc.message}
            return _answer({"key": key, **body} if key else body, 403)


class EvaluateFlagView(OFREPView):
    """POST /ofrep/v1/evaluate/flags/{key}: one service's assignment of the context's unit."""

    def post(
        self, request: HttpRequest, actor: Actor, context: ofrep.Context, key: str
    ) -> HttpResponse:
        return _answer(ofrep.evaluate_flag(key, context, actor))


class EvaluateFlagsView(OFREPView):
    """POST /ofrep/v1/evaluate/flags: every service of the token, with an ETag; a request whose
    If-None-Match holds the current one is answered 304 without a body."""

    def post(self, request: HttpRequest, actor: Actor, context: ofrep.Context) -> HttpResponse:
        body = json.dumps(ofrep.evaluate_all(context, actor), separators=(",", ":")).encode()
        tag = ofrep.etag(context, body)
        wanted = parse_etags(request.META.get("HTTP_IF_NONE_MATCH", ""))
        # Weak comparison (RFC 9110 13.1.2), as If-None-Match asks: W/"x" matches "x".
        if "*" in wanted or tag in {t.removeprefix("W/") for t in wanted}:
            response: HttpResponse = HttpResponseNotModified()
        else:
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = tag
        response["Cache-Control"] = "no-cache"
        return response

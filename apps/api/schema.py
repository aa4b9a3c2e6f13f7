"""The OpenAPI schema's own parts: the token authentication (loaded by ApiConfig.ready), the
error bodies, and the AutoSchema that documents every operation's error answers."""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from .serializers import BlockerSerializer


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Token <key>`."""

    target_class = "apps.api.authentication.ServiceTokenAuthentication"
    name = "ServiceToken"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`; keys come from `manage.py issue_token` or the admin.",
        }


class ErrorSerializer(serializers.Serializer):
    """Every 4xx body: a `detail` sentence, or per-field lists of messages (`{"version": [...]}`),
    with any other keys the refusal adds (`limit`, `known_keys`)."""

    detail = serializers.CharField(required=False, help_text="What is wrong, in a sentence.")


class ConflictSerializer(ErrorSerializer):
    """409: the release or incident is not in a state that allows this now; `blockers` lists
    what the gate found when a transition was refused for it."""

    blockers = BlockerSerializer(many=True, required=False)


def _json(serializer: type[serializers.Serializer], description: str) -> OpenApiResponse:
    return OpenApiResponse(serializer, description=description)


# The answers any operation can give, by what it has (see AutoSchema._error_codes).
BAD_REQUEST = _json(ErrorSerializer, "Invalid input: a parameter, a field or the body.")
UNAUTHENTICATED = _json(ErrorSerializer, "No valid token or session.")
FORBIDDEN = _json(ErrorSerializer, "This token or person may not do that.")
NOT_FOUND = _json(ErrorSerializer, "No such object (or no such path).")
CONFLICT = _json(ConflictSerializer, "Not allowed in the object's current state.")
TOO_LARGE = _json(ErrorSerializer, "The body is over the size limit it names.")
THROTTLED = _json(ErrorSerializer, "Over the rate limit; retry after Retry-After seconds.")


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema plus the error answers each operation can really give, derived
    from what the view has (a body, a path parameter, permissions, throttles), so no operation
    documents only its 200. A 409 is not derivable: the views that give one declare CONFLICT."""

    def _error_codes(self) -> dict[str, OpenApiResponse]:
        codes = {"400": BAD_REQUEST}  # a NUL in any query string (BadInputMiddleware)
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes |= {"401": UNAUTHENTICATED, "403": FORBIDDEN}
        if "{" in self.path:
            codes["404"] = NOT_FOUND
        if self.method in ("POST", "PUT", "PATCH"):
            codes["413"] = TOO_LARGE
        if self.view.get_throttles():
            codes["429"] = THROTTLED
        return codes

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, answer in self._error_codes().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    answer, code, media_types=["application/json"], direction=direction
                )
        return responses

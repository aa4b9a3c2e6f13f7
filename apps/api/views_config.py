"""Configuration as code over HTTP: POST /api/v1/config/apply and GET /api/v1/config/schema.json.

A pipeline applies the repository's rollout.yaml on merge with a token created by a release
manager; the body is the document as YAML (application/yaml) or JSON.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.configuration.apply import ConfigError, apply, may_apply
from apps.configuration.documents import load
from apps.configuration.schema import document_schema

from .authentication import TokenPrincipal, actor_for
from .parsers import JSONParser


class YAMLParser(parsers.BaseParser):
    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return load(stream.read())
        except ConfigError as exc:
            raise ParseError(exc.errors[0]) from exc


class TextYAMLParser(YAMLParser):
    media_type = "text/yaml"


def applier(request: Request) -> Any:
    """The person the request applies for: the signed-in one, or the token's creator."""
    if isinstance(request.user, TokenPrincipal):
        return request.user.token.created_by
    return request.user


class MayApplyConfig(BasePermission):
    message = (
        "Applying configuration needs a release manager: sign in as one, or use a token a "
        "release manager created."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return may_apply(applier(request))


class ConfigApplyView(APIView):
    """Apply a configuration document in one transaction; answers the diff."""

    permission_classes = [MayApplyConfig]
    parser_classes = [YAMLParser, TextYAMLParser, JSONParser]

    @extend_schema(
        request={"application/yaml": OpenApiTypes.STR, "application/json": OpenApiTypes.OBJECT},
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("dry_run", OpenApiTypes.BOOL, description="Show, apply nothing.")
        ],
        description=(
            "The body is the document of /api/v1/config/schema.json (as `manage.py "
            "export_config` writes it). 200: {applied, changed, changes: [{op, what, detail, "
            "line}]}; 400: {errors: [...]} naming each problem by its place, nothing applied."
        ),
    )
    def post(self, request: Request) -> Response:
        dry_run = request.query_params.get("dry_run", "").lower() in {"1", "true", "yes"}
        person = applier(request)
        try:
            result = apply(
                request.data,
                actor=actor_for(request),
                dry_run=dry_run,
                # SQL sources run queries on a database: superusers only, as in the admin.
                allow_sql=bool(person and person.is_superuser),
            )
        except ConfigError as exc:
            return Response({"detail": "Nothing applied.", "errors": exc.errors}, status=400)
        return Response(result.as_dict())


def config_schema(request: Any) -> JsonResponse:
    """The document's JSON Schema: public, it holds no data."""
    return JsonResponse(document_schema(), json_dumps_params={"indent": 2})

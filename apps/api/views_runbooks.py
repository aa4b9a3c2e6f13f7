"""Runbook import through the API, for pipelines that keep runbooks in their repository.

POST /api/v1/runbooks/preview: the draft (the `import_runbook --dry-run --json` object) and, with a
service, what would change against its last import. POST /api/v1/runbooks/import: save it (or an
edited draft in the same shape) for a service, all or nothing. A person needs the runbook import
permission (release managers); a token may import only for its own services.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.scope import get_for
from apps.releases.models import Service
from apps.runbooks.diff import against_last_import
from apps.runbooks.draft import Draft, DraftShapeError, from_json
from apps.runbooks.parsing import parse
from apps.runbooks.saving import ImportRefused, SaveOptions, save_draft
from apps.runbooks.text import MAX_BYTES, RunbookError, too_large

from .authentication import actor_for
from .permissions import TokenOrPersonMay

IMPORT_PERM = "runbooks.add_runbookimport"
BODY = {
    "type": "object",
    "properties": {
        "runbook": {"type": "string", "description": "The Markdown text (or send `file`)."},
        "file": {"type": "string", "format": "binary"},
        "source": {"type": "string", "description": "The file's name, for notes and records."},
        "service": {"type": "string", "description": "Slug of the service it configures."},
        "draft": {"type": "object", "description": "An edited draft (preview's shape)."},
        "prometheus_url": {"type": "string"},
        "sql_database": {"type": "string"},
    },
}


class BadRequest(Exception):
    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.message, self.errors = message, errors or [message]


def _body(request: Request) -> Any:
    """The body's fields: a JSON object or a form; anything else is refused by name."""
    data = request.data
    if not hasattr(data, "get"):
        raise BadRequest(f"The body must be a JSON object (or a form), not {type(data).__name__}.")
    return data


def _service(request: Request, required: bool) -> Service | None:
    slug = _body(request).get("service")
    if not slug:
        if required:
            raise BadRequest("Name the service the runbook configures: 'service' (its slug).")
        return None
    if not isinstance(slug, str):
        raise BadRequest("'service' is the service's slug, a string.")
    return get_for(
        actor_for(request), Service.objects.all(), perm=IMPORT_PERM, service_field="id", slug=slug
    )


def _draft(request: Request) -> Draft:
    _body(request)
    upload = request.FILES.get("file") if hasattr(request, "FILES") else None
    source = request.data.get("source") or (upload.name if upload else "") or "runbook.md"
    if not isinstance(source, str):
        raise BadRequest("'source' is the runbook's file name, a string.")
    edited = request.data.get("draft")
    if edited is not None:
        try:
            return from_json(edited, source=source)
        except DraftShapeError as exc:
            raise BadRequest(f"'draft': {exc}") from exc
    if upload is not None:
        if upload.size > MAX_BYTES:
            raise BadRequest(too_large(source, upload.size))
        data = upload.read()
    else:
        text = request.data.get("runbook")
        if not isinstance(text, str) or not text:
            raise BadRequest("Send the runbook: 'runbook' (its Markdown text) or 'file'.")
        data = text.encode("utf-8", errors="surrogatepass")
    try:
        name = request.data.get("name")
        return parse(data, source=source, name=name if isinstance(name, str) else None)
    except RunbookError as exc:
        raise BadRequest(exc.message) from exc


def _bad(exc: BadRequest) -> Response:
    return Response({"detail": exc.message, "errors": exc.errors}, status=400)


class RunbookPreviewView(APIView):
    """The draft a runbook gives, saving nothing; with `service`, what changed since its last
    import."""

    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": IMPORT_PERM}

    @extend_schema(
        request={"application/json": BODY, "multipart/form-data": BODY},
        responses={
            200: OpenApiResponse(description='{"draft": {...}, "diff": null | {...}}'),
            400: OpenApiResponse(description="What is wrong with the file or the body"),
            403: OpenApiResponse(description="No permission, or a token of another service"),
            404: OpenApiResponse(description="No service with that slug"),
        },
    )
    def post(self, request: Request) -> Response:
        try:
            service = _service(request, required=False)
            draft = _draft(request)
        except BadRequest as exc:
            return _bad(exc)
        return Response(
            {"draft": draft.as_json(), "diff": against_last_import(draft, service).as_json()}
        )


class RunbookImportView(APIView):
    """Save the runbook's draft (or the edited one sent) for a service, in one transaction."""

    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": IMPORT_PERM}

    @extend_schema(
        request={"application/json": BODY, "multipart/form-data": BODY},
        responses={
            201: OpenApiResponse(description="What was saved"),
            400: OpenApiResponse(description="Every reason the draft cannot be saved"),
            403: OpenApiResponse(description="No permission, or a token of another service"),
            404: OpenApiResponse(description="No service with that slug"),
        },
    )
    def post(self, request: Request) -> Response:
        actor = actor_for(request)
        try:
            service = _service(request, required=True)
            assert service is not None  # required=True; get_for held a token to its services
            draft = _draft(request)
            options = SaveOptions(
                prometheus_url=str(request.data.get("prometheus_url") or ""),
                sql_database=str(request.data.get("sql_database") or ""),
            )
            diff = against_last_import(draft, service)
            saved = save_draft(draft, service=service, actor=actor, options=options)
        except BadRequest as exc:
            return _bad(exc)
        except ImportRefused as exc:
            return _bad(BadRequest("The runbook's draft cannot be saved.", exc.messages))
        body: dict[str, Any] = {
            "import": saved.record.pk,
            "service": service.slug,
            "plan": None
            if saved.plan is None
            else {"id": saved.plan.pk, "name": saved.plan.name, "slug": saved.plan.slug},
            "escalation_policy": None
            if saved.policy is None
            else {"id": saved.policy.pk, "name": saved.policy.name},
            "criteria": [c.pk for c in saved.criteria],
            "checklists": saved.checklists,
            "unfilled": saved.unfilled,
            "notes": [*draft.notes, *saved.notes],
            "diff": diff.as_json(),
        }
        return Response(body, status=status.HTTP_201_CREATED)

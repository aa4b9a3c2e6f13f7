"""Answers for when a dependency fails under a request, or the request is one the database cannot
take: clean, short, naming the cause, and never a traceback (JSON under /api/, a page elsewhere)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.html import escape

logger = logging.getLogger(__name__)

# Seconds a client is told to wait: about what a database restart or fail-over takes.
RETRY_AFTER = 5
API_PREFIX = "/api/"
OUTAGE_PAGE = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Temporarily unavailable"
    "</title></head><body><h1>rolloutdesk is temporarily unavailable</h1><p>The database does "
    "not answer. Nothing you did was lost; try again in a few seconds.</p></body></html>"
)


class DatabaseUnavailableMiddleware:
    """A database that does not answer makes a 503 with Retry-After (JSON under /api/), not a 500.

    The cause goes to the log only. The connection is dropped by Django at the end of the
    request (it saw an error), and CONN_HEALTH_CHECKS makes the next request open a fresh one, so
    the app recovers by itself once the database is back.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.error(
            "Database unavailable for %s %s: %s",
            request.method,
            request.path,
            str(exception).splitlines()[0] if str(exception) else type(exception).__name__,
        )
        if request.path.startswith(API_PREFIX):
            response: HttpResponse = JsonResponse(
                {"detail": "The database is unavailable; try again shortly."}, status=503
            )
        else:
            response = HttpResponse(OUTAGE_PAGE, status=503)
        response["Retry-After"] = str(RETRY_AFTER)
        return response


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
PROBLEM_PAGE = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
    "<body><h1>{title}</h1><p>{detail}</p></body></html>"
)


def _answer(
    request: HttpRequest, status: int, title: str, detail: str, **extra: object
) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": detail, **extra}, status=status)
    page = PROBLEM_PAGE.format(title=escape(title), detail=escape(detail))
    return HttpResponse(page, status=status)


def too_large(request: HttpRequest) -> HttpResponse:
    """413 naming the limit: Django's own answer is a bare HTML 400 wherever the body is read."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    detail = (
        f"The request body is larger than the limit of {limit:,} bytes (files uploaded as "
        "multipart parts are not counted)."
    )
    return _answer(request, 413, "Request too large", detail, limit=limit)


def _nul_parameter(request: HttpRequest) -> str | None:
    """The name of the first query-string or form parameter (or the path) holding a NUL."""
    if "\x00" in request.path:
        return "path"
    sources = [request.GET]
    # Django parses a form body for POST only (no page or API endpoint takes PUT or PATCH forms).
    if request.method == "POST" and request.content_type in FORM_TYPES:
        sources.append(request.POST)
    for source in sources:
        for name, values in source.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return name.replace("\x00", "\\x00")
    return None


class BadInputMiddleware:
    """A NUL in the path, a query-string or a form value is a 400 naming the parameter; a body
    over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 naming the limit.

    PostgreSQL text cannot hold a NUL (psycopg raises DataError, a 500), and no form field or
    filter needs one, so it is refused before any view, filter or form sees it. JSON bodies are
    checked by the API's parser (apps.api.parsers), which names the place in the document.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            name = _nul_parameter(request)
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
            return self.process_exception(request, exc)
        except MultiPartParserError as exc:
            # Reading request.POST above parses the body: a broken multipart one (no boundary)
            # is the client's error, answered here or Django answers its HTML 400 page.
            return _answer(request, 400, "Bad request", f"The multipart body is malformed: {exc}")
        if name is not None:
            return _answer(
                request,
                400,
                "Bad request",
                f"The parameter {name!r} contains a NUL character (\\x00), which is not allowed.",
                parameter=name,
            )
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig):
            return too_large(request)
        if isinstance(exception, (TooManyFieldsSent, TooManyFilesSent)):
            return _answer(request, 400, "Bad request", str(exception))
        if isinstance(exception, SuspiciousOperation) and request.path.startswith(API_PREFIX):
            return _answer(request, 400, "Bad request", "The request is malformed.")
        return None

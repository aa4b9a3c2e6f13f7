"""Answers for when a dependency fails under a request: clean, short, and never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

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

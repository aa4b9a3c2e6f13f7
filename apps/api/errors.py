"""One mapping from domain errors to HTTP answers."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.scope import Refused
from apps.rollouts.transitions import TransitionError, TransitionForbidden


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """403 for a forbidden transition or object, 409 for one not allowed now, 400 for invalid
    input."""
    if isinstance(exc, Refused):
        # DRF answers a Django PermissionDenied with its stock sentence; this one says why.
        return Response({"detail": exc.message}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, TransitionForbidden):
        return Response({"detail": exc.message}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, TransitionError):
        body: dict[str, Any] = {"detail": exc.message}
        if exc.blockers:
            body["blockers"] = [b.as_dict() for b in exc.blockers]
        return Response(body, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        # Per-field errors name their fields; a whole-object error is one sentence, like
        # every other "detail" the API answers (several are joined, never a bare list).
        body = (
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": " ".join(exc.messages)}
        )
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)

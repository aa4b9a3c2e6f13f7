"""The benchmark floor: a plain Django view on the same stack, answering a constant document."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

FLOOR_DOCUMENT = {"status": "ok", "service": "rolloutdesk", "floor": True}


def floor(request: HttpRequest) -> JsonResponse:
    """No database, no authentication, no DRF: what the stack costs before any of our code."""
    return JsonResponse(FLOOR_DOCUMENT)

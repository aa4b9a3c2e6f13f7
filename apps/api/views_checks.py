"""API for metric checks: CI pushes samples; anyone may read a release's latest verdicts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.checks.samples import MAX_SAMPLES, SampleBatchError, ingest
from apps.checks.selection import stage_criteria
from apps.checks.standing import latest_results
from apps.core.scope import get_for
from apps.releases.models import Release

from . import parsers
from . import serializers_checks as s
from .authentication import TokenPrincipal, actor_for
from .permissions import TokenOrPersonMay


def max_body_bytes() -> int:
    return settings.CHECKS_SAMPLES_MAX_BYTES


class SamplesView(APIView):
    """Push metric samples: all or nothing, up to 10,000 per request."""

    # A token's samples are held to its services item by item, by ingest.
    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": "checks.add_sample"}

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={
            201: OpenApiResponse(description='{"accepted": n, "duplicates": d}'),
            400: OpenApiResponse(description="Per-item errors: index, field, message"),
            413: OpenApiResponse(description="Body over the size limit"),
        },
    )
    def post(self, request: Request) -> Response:
        """Store a JSON list of {release, metric, value, variant?, at?, count?} samples."""
        limit = max_body_bytes()
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > limit:
            return _too_big(declared, limit)
        raw = request.stream.read(limit + 1) if request.stream is not None else b""
        if len(raw) > limit:
            return _too_big(len(raw), limit)
        # Read here, not by the parser, for the higher size limit. NaN and Infinity pass the
        # parser's check so that the item naming them gets the error.
        items = parsers.loads(raw or b"null", finite=False)
        scope = request.user.service_ids if isinstance(request.user, TokenPrincipal) else None
        try:
            outcome = ingest(items, service_ids=scope)
        except SampleBatchError as exc:
            body: dict[str, Any] = {"detail": exc.message}
            if exc.errors:
                body["errors"] = exc.errors
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {"accepted": outcome.accepted, "duplicates": outcome.duplicates},
            status=status.HTTP_201_CREATED,
        )


def _too_big(size: int, limit: int) -> Response:
    return Response(
        {
            "detail": f"The body is {size:,} bytes; the limit is {limit:,} "
            f"(and at most {MAX_SAMPLES:,} samples). Split the batch."
        },
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


class LatestChecksView(APIView):
    """Each criterion's latest verdict and value for a release."""

    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": "releases.view_release"}

    @extend_schema(responses={200: s.LatestChecksSerializer})
    def get(self, request: Request, pk: int) -> Response:
        release = get_for(actor_for(request), Release.objects.with_related(), pk=pk)
        results = {r.criterion_id: r for r in latest_results(release)}
        watching = stage_criteria(release, release.current_stage)
        criteria = {c.pk: c for c in watching}
        for result in results.values():
            criteria.setdefault(result.criterion_id, result.criterion)
        return Response(
            {
                "release": release.pk,
                "status": release.status,
                "stage": release.current_stage.name if release.current_stage else None,
                "criteria": [
                    s.latest_payload(criterion, results.get(pk))
                    for pk, criterion in sorted(criteria.items())
                ],
            }
        )

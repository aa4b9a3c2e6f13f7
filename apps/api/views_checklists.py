"""API for checklists: a release's checklists, and CI reporting its automated items."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.checklists.models import ChecklistItem
from apps.checklists.services import (
    ChecklistError,
    ChecklistForbidden,
    UnknownCheckKey,
    report_check,
    set_item_state,
)
from apps.core.scope import get_for
from apps.releases.models import Release
from apps.rollouts import gate

from . import serializers_checklists as s
from .authentication import actor_for
from .permissions import TokenOrPersonMay
from .schema import CONFLICT
from .serializers import gate_payload


def _release_for(request: Request, pk: int) -> Release:
    return get_for(actor_for(request), Release.objects.with_related(), pk=pk)


class ReleaseChecklistsView(APIView):
    """The release's checklists with their items, progress and who ticked what."""

    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": "releases.view_release"}

    @extend_schema(responses={200: s.ChecklistSerializer(many=True)})
    def get(self, request: Request, pk: int) -> Response:
        release = _release_for(request, pk)
        checklists = (
            release.checklists.with_progress()
            .select_related("stage")
            .prefetch_related(
                Prefetch("items", queryset=ChecklistItem.objects.order_by("position"))
            )
            .order_by("position", "id")
        )
        return Response(s.ChecklistSerializer(checklists, many=True).data)


class ReleaseChecksView(APIView):
    """CI reports an automated item: passed ticks it, passed=false unticks it; all is recorded."""

    permission_classes = [TokenOrPersonMay]
    # Whether a person may tick is the checklists service's question (automated items: CI's).
    person_perms = {"read": "releases.view_release"}

    @extend_schema(
        request=s.CheckReportSerializer,
        responses={200: s.CheckReportResultSerializer, 409: CONFLICT},
        description=(
            'Body: {"key": "tests", "passed": true, "detail": "312 passed", "url": "https://..."}.'
            " Every item of the release with that key is ticked (or, with passed=false, "
            "unticked). An unknown key answers 400 with the keys the release knows; a manual "
            'item (sent as {"item": id}) cannot be ticked by a token: 403.'
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        release = _release_for(request, pk)
        body = s.CheckReportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        actor = actor_for(request)
        try:
            if "key" in data:
                changes = report_check(
                    release,
                    key=data["key"],
                    passed=data["passed"],
                    actor=actor,
                    detail=data["detail"],
                    url=data["url"],
                )
            else:
                item = ChecklistItem.objects.filter(
                    pk=data["item"], checklist__release=release
                ).first()
                if item is None:
                    return Response(
                        {"item": [f"Release {release.pk} has no checklist item {data['item']}."]},
                        status=status.HTTP_400_BAD_REQUEST,
                    )
                changes = [
                    set_item_state(
                        item,
                        done=data["passed"],
                        actor=actor,
                        comment=data["detail"],
                        evidence_url=data["url"],
                        passed=data["passed"],
                    )
                ]
        except UnknownCheckKey as exc:
            return Response(
                {"key": [exc.message], "known_keys": exc.known_keys},
                status=status.HTTP_400_BAD_REQUEST,
            )
        except ChecklistForbidden as exc:
            return Response({"detail": exc.message}, status=status.HTTP_403_FORBIDDEN)
        except ChecklistError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_409_CONFLICT)
        items = (
            ChecklistItem.objects.filter(pk__in=[c.item_id for c in changes])
            .select_related("checklist")
            .order_by("checklist__position", "position")
        )
        return Response(
            {
                "key": data.get("key", ""),
                "passed": data["passed"],
                "items": s.ChecklistItemSerializer(items, many=True).data,
                "gate": gate_payload(gate.evaluate(release)),
            }
        )

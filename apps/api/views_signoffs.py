"""API for sign-offs: read what a gate still needs; CI reports a new artifact. Tokens never sign."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.scope import NO_PERMISSION, Refused, get_for
from apps.releases.models import Release
from apps.rollouts.promotion import change_artifact
from apps.signoffs import services

from . import serializers_signoffs as s
from .authentication import TokenPrincipal, actor_for
from .permissions import TokenOrPersonMay


def _release_for(request: Request, pk: int) -> Release:
    return get_for(actor_for(request), Release.objects.with_related(), pk=pk)


def _payload(release: Release) -> dict[str, Any]:
    gate_status = services.gate_status(release, with_history=True)
    history = (
        gate_status.history
        if gate_status
        else list(release.signoffs.select_related("signer", "stage"))
    )
    return s.signoffs_payload(release, gate_status, history)


def _signoffs_of(request: Request, pk: int) -> Release:
    """The release, if the caller may see its sign-offs: its token, or a person who views
    releases or is in one of its sign-off groups (the same rule as the sign-off page)."""
    release = _release_for(request, pk)
    if not isinstance(request.user, TokenPrincipal) and not services.may_see_signoffs(
        release, request.user
    ):
        # Before anything is judged: a refusal says nothing of the gate or who signs it.
        raise Refused(NO_PERMISSION)
    return release


class ReleaseSignOffsView(APIView):
    """GET: the release's sign-offs and what its gate still needs. POST: a person signs."""

    permission_classes = [TokenOrPersonMay]
    # Reading and signing are for whoever may see the release's sign-offs (_signoffs_of).
    person_perms: dict[str, str | None] = {"read": None}

    @extend_schema(responses={200: s.SignOffsSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(_payload(_signoffs_of(request, pk)))

    @extend_schema(request=s.SignInputSerializer, responses={201: s.SignOffsSerializer})
    def post(self, request: Request, pk: int) -> Response:
        if isinstance(request.user, TokenPrincipal):
            raise PermissionDenied(
                "Signing is for people: an API token cannot sign off. Open the sign-off page."
            )
        release = _signoffs_of(request, pk)
        body = s.SignInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.sign(
            release,
            user=request.user,
            decision=body.validated_data["decision"],
            comment=body.validated_data["comment"],
        )
        return Response(_payload(release), status=status.HTTP_201_CREATED)


class ReleaseArtifactView(APIView):
    """POST: the release now deploys another commit; every sign-off given on the old one lapses,
    and a release whose plan crosses environments goes back to the first stage of the earliest
    environment that ran the old one."""

    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": "releases.view_release", "write": "releases.change_release"}

    @extend_schema(request=s.ArtifactSerializer, responses={200: s.ArtifactResultSerializer})
    def post(self, request: Request, pk: int) -> Response:
        release = _release_for(request, pk)
        body = s.ArtifactSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        release, lapsed = change_artifact(
            release,
            commit_sha=data["commit_sha"],
            commit_time=data.get("commit_time"),
            actor=actor_for(request),
            reason=data["reason"],
        )
        return Response(
            {
                "release": release.pk,
                "commit_sha": release.commit_sha,
                "lapsed": [
                    {"signer": x.signer.get_username(), "decision": x.decision} for x in lapsed
                ],
            }
        )

"""API for incidents: list and open them, acknowledge and resolve them, and Alertmanager's webhook.

Thin, like the other views: they parse, check scope and call apps.incidents (lifecycle for status
changes, alertmanager for the webhook).
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.scope import get_for
from apps.incidents import alertmanager, lifecycle
from apps.incidents.choices import IncidentSource, IncidentStatus, Severity
from apps.incidents.models import Incident, IncidentEvent

from . import serializers_incidents as s
from .authentication import ServiceTokenAuthentication, TokenPrincipal, actor_for
from .parsers import JSONParser
from .permissions import TokenOrPersonMay, scope_to_token
from .schema import CONFLICT

VIEW_PERM = "incidents.view_incident"
ADD_PERM = "incidents.add_incident"


class IncidentFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug")
    status = django_filters.MultipleChoiceFilter(choices=IncidentStatus.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    source = django_filters.MultipleChoiceFilter(choices=IncidentSource.choices)
    release = django_filters.NumberFilter(field_name="release_id")

    class Meta:
        model = Incident
        fields = ["service", "status", "severity", "source", "release"]


def _refusal(exc: lifecycle.IncidentError) -> Response:
    code = status.HTTP_403_FORBIDDEN
    if not isinstance(exc, lifecycle.IncidentForbidden):
        code = status.HTTP_409_CONFLICT
    return Response({"detail": exc.message}, status=code)


class IncidentListView(generics.ListCreateAPIView):
    """GET: incidents, newest first (filters: service, status, severity, source, release).
    POST: open an incident by hand; the policy it names, else the first routing rule that
    matches, else its service's escalation policy pages L1 at once."""

    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": VIEW_PERM, "write": ADD_PERM}
    filterset_class = IncidentFilter
    serializer_class = s.IncidentSerializer

    def get_queryset(self) -> QuerySet[Incident]:
        qs = Incident.objects.select_related("service", "policy").order_by("-opened_at", "-id")
        return scope_to_token(qs, self.request)

    @extend_schema(request=s.IncidentCreateSerializer, responses={201: s.IncidentSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = s.IncidentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            incident = lifecycle.open_incident(
                service=data["service"],
                title=data["title"],
                severity=data["severity"],
                description=data["description"],
                release=data["release"],
                policy=data["policy"],
                actor=actor_for(request),
            )
        except lifecycle.IncidentError as exc:
            return _refusal(exc)
        return Response(s.IncidentSerializer(incident).data, status=status.HTTP_201_CREATED)


def _incident_for(request: Request, pk: int) -> Incident:
    return get_for(actor_for(request), Incident.objects.select_related("service", "policy"), pk=pk)


class IncidentDetailView(APIView):
    """GET: one incident with its whole timeline."""

    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": VIEW_PERM}

    @extend_schema(responses={200: s.IncidentDetailSerializer})
    def get(self, request: Request, pk: int) -> Response:
        incident = _incident_for(request, pk)
        incident.ordered_events = list(
            IncidentEvent.objects.filter(incident=incident).order_by("created_at", "id")
        )
        return Response(s.IncidentDetailSerializer(incident).data)


class IncidentActionView(APIView):
    """POST: acknowledge or resolve (also mitigate, reopen) an incident, with an optional reason.

    409 when the incident's status does not allow it (already acknowledged, resolved, ...).
    """

    # Whether a person may respond is the lifecycle's question (role, or paged for it).
    permission_classes = [TokenOrPersonMay]
    person_perms: dict[str, str | None] = {"read": None}
    action_name = ""

    @extend_schema(
        request=s.IncidentActionSerializer, responses={200: s.IncidentSerializer, 409: CONFLICT}
    )
    def post(self, request: Request, pk: int) -> Response:
        incident = _incident_for(request, pk)
        body = s.IncidentActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        change = getattr(lifecycle, self.action_name)
        try:
            incident = change(
                incident, actor=actor_for(request), reason=body.validated_data["reason"]
            )
        except lifecycle.IncidentError as exc:
            return _refusal(exc)
        return Response(s.IncidentSerializer(incident).data)


class IsToken(BasePermission):
    message = "Alertmanager sends a service token: Authorization: Token <key>."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, TokenPrincipal)


class AlertmanagerHookView(APIView):
    """POST: Alertmanager's webhook (version 4). Firing alerts open or update the incident with
    the same fingerprint; resolved ones resolve it. 400 malformed, 422 unknown service, 503 (with
    Retry-After) when other posts for the same alerts kept winning the race."""

    authentication_classes = [ServiceTokenAuthentication]
    permission_classes = [IsToken]
    parser_classes = [JSONParser]

    @extend_schema(
        request=dict,
        responses={200: dict},
        parameters=[
            OpenApiParameter(
                "service_label",
                str,
                required=False,
                description="The label naming the service (default: the configured one).",
            )
        ],
    )
    def post(self, request: Request) -> Response:
        try:
            receipt = alertmanager.receive(
                request.data,
                actor=actor_for(request),
                service_label=request.query_params.get("service_label") or None,
            )
        except alertmanager.PayloadError as exc:
            return Response(
                {
                    "detail": "Not an Alertmanager webhook payload (version 4).",
                    "errors": exc.errors,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        except alertmanager.Busy as exc:
            # A 5xx, never a 4xx: Alertmanager retries the one and drops the other.
            busy = Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
            busy["Retry-After"] = str(exc.retry_after)
            return busy
        except alertmanager.UnknownService as exc:
            return Response(
                {"detail": str(exc), "label": exc.label, "alerts": exc.problems},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        except lifecycle.IncidentError as exc:
            return _refusal(exc)
        return Response(receipt.as_dict())

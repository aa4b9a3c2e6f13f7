"""API views: thin, they parse, check scope and call the domain functions."""

from __future__ import annotations

import logging
from typing import Any

import django_filters
from django.db import connections
from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.checks.models import enabled_criteria
from apps.core.scope import check_service, get_for
from apps.jobs import heartbeat
from apps.releases.choices import ReleaseStatus
from apps.releases.models import (
    Environment,
    Event,
    Release,
    RolloutPlan,
    Service,
    StageTemplate,
)
from apps.rollouts import inputs, transitions, verdicts
from apps.rollouts.models import KeptVerdict
from apps.rollouts.registration import register_release
from rolloutdesk.celery import app as celery_app

from . import serializers as s
from .authentication import TokenPrincipal, actor_for
from .permissions import TokenOrPersonMay, scope_to_token
from .schema import CONFLICT

logger = logging.getLogger(__name__)


class ServiceViewSet(viewsets.ReadOnlyModelViewSet):
    """Services this caller may see (a token: its own)."""

    serializer_class = s.ServiceSerializer
    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": "releases.view_service"}
    lookup_field = "slug"

    def get_queryset(self) -> QuerySet[Service]:
        qs = Service.objects.select_related("default_plan").order_by("name")
        return scope_to_token(qs, self.request, field="id")


class PlanViewSet(viewsets.ReadOnlyModelViewSet):
    """Rollout plans with their stages."""

    serializer_class = s.PlanSerializer
    permission_classes = [TokenOrPersonMay]
    person_perms = {"read": "releases.view_rolloutplan"}
    lookup_field = "slug"
    queryset = RolloutPlan.objects.prefetch_related(
        Prefetch("stages", queryset=StageTemplate.objects.order_by("position")),
        Prefetch("criteria", queryset=enabled_criteria(), to_attr="enabled_criteria"),
        Prefetch("stages__criteria", queryset=enabled_criteria(), to_attr="enabled_criteria"),
    ).order_by("name")


class ReleaseFilter(django_filters.FilterSet):
    service = django_filters.CharFilter(field_name="service__slug")
    # Where the release is now (its current stage's environment; a planned one's first stage's):
    # a plan may go staging, then production. For a plan in one environment, its environment.
    environment = django_filters.CharFilter(method="in_environment")
    status = django_filters.MultipleChoiceFilter(choices=ReleaseStatus.choices)
    version = django_filters.CharFilter()

    class Meta:
        model = Release
        fields = ["service", "environment", "status", "version"]

    def in_environment(self, queryset: QuerySet[Release], name: str, value: str) -> QuerySet:
        return queryset.in_environment(value)


def _transition_view(
    name: str, body_serializer: type = s.ReasonSerializer, url_path: str = ""
) -> Any:
    """Build the POST endpoint for one transition; they differ only by the function called
    (and a step back's body, which may name the stage it goes to)."""

    def view(self: ReleaseViewSet, request: Request, pk: str | None = None) -> Response:
        release = self.get_object()
        body = body_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        inputs.run(release, name, actor=actor_for(request), **body.validated_data)
        return Response(s.ReleaseDetailSerializer(self._reload(release)).data)

    view.__name__ = name
    view.__doc__ = transitions.ACTIONS[name].__doc__
    endpoint = action(detail=True, methods=["post"], url_path=url_path or name)(view)
    # After @action, not under it: @action replaces the function's kwargs, where extend_schema
    # keeps its schema (the schema said these took a Release body and never answered 409).
    schema = extend_schema(
        request=body_serializer, responses={200: s.ReleaseDetailSerializer, 409: CONFLICT}
    )
    return schema(endpoint)


class ReleaseViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Releases: register, read, move through their stages, ask the gate."""

    permission_classes = [TokenOrPersonMay]
    person_perms = {
        "read": "releases.view_release",
        "create": "releases.add_release",
        "write": "releases.operate_release",
    }
    filterset_class = ReleaseFilter

    def get_queryset(self) -> QuerySet[Release]:
        qs = Release.objects.with_related().with_current_environment()
        if self.action == "list":
            # A token lists its own services' releases; asking for one of another service by
            # id answers 403 (get_object, apps.core.scope), not a misleading 404.
            return scope_to_token(qs, self.request)
        if self.action == "retrieve":
            return qs.prefetch_related("stages__environment")
        return qs

    def get_serializer_class(self) -> type:
        if self.action == "create":
            return s.ReleaseCreateSerializer
        if self.action == "retrieve":
            return s.ReleaseDetailSerializer
        return s.ReleaseSerializer

    def get_object(self) -> Release:
        """The release of the URL, if this caller may have it (404, or 403 for another
        service's token)."""
        queryset = self.filter_queryset(self.get_queryset())
        return get_for(actor_for(self.request), queryset, pk=self.kwargs["pk"])

    def _reload(self, release: Release) -> Release:
        return (
            Release.objects.with_related()
            .with_current_environment()
            .prefetch_related("stages__environment")
            .get(pk=release.pk)
        )

    @extend_schema(
        request=s.ReleaseCreateSerializer,
        responses={201: s.ReleaseDetailSerializer, 200: s.ReleaseDetailSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Register a release; the same service, environment and version again returns it (200)."""
        body = s.ReleaseCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        service = data["service"]
        refusal = f"This token may not register releases of {service.slug!r}."
        check_service(actor_for(request), service.pk, "releases", refusal)
        user = None if isinstance(request.user, TokenPrincipal) else request.user
        release, created = register_release(
            service=service,
            environment=data["environment"],
            version=data["version"],
            plan=data.get("plan"),
            actor=actor_for(request),
            commit_sha=data.get("commit_sha", ""),
            commit_time=data.get("commit_time"),
            changelog_url=data.get("changelog_url", ""),
            author=user,
            author_name=data.get("author", ""),
        )
        return Response(
            s.ReleaseDetailSerializer(self._reload(release)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    start = _transition_view("start")
    advance = _transition_view("advance")
    pause = _transition_view("pause")
    resume = _transition_view("resume")
    rollback = _transition_view("rollback")
    abort = _transition_view("abort")
    step_back = _transition_view("step_back", s.StepBackSerializer, url_path="step-back")

    def _kept(self) -> KeptVerdict:
        """The release's kept verdict, if this caller may have the release (as get_object).

        One query for the release's service and its kept row together: CI polls these two
        endpoints, and a poll must cost a row read, not a gate evaluation.
        """
        release = get_for(
            actor_for(self.request),
            Release.objects.select_related("kept_verdict").only("pk", "service_id", *KEPT_FIELDS),
            pk=self.kwargs["pk"],
        )
        kept = getattr(release, "kept_verdict", None)
        if kept is None or kept.is_due(timezone.now()):
            kept = verdicts.read(release.pk)
        return kept

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "wait",
                int,
                description="Long poll: answer as soon as the verdict changes (from the "
                "If-None-Match ETag, else from now), or after this many seconds (at most "
                "GATE_LONG_POLL_MAX_SECONDS).",
            )
        ],
        responses={200: s.GateSerializer, 304: None},
    )
    @action(detail=True, methods=["get"])
    def gate(self, request: Request, pk: str | None = None) -> Response:
        """May the release take its next step? The verdict and every blocker, as kept (ETag:
        send it back in If-None-Match for a 304; ?wait=30 to wait for a change)."""
        query = s.GateQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        kept = self._kept()
        seen = request.headers.get("If-None-Match", "")
        wait = query.validated_data.get("wait", 0)
        waited = ""
        if wait and (not seen or etag_matches(seen, kept.etag)):
            with verdicts.waiting_slot() as may_wait:
                if may_wait:
                    kept = verdicts.wait_for_change(kept.release_id, kept.version, wait) or kept
                    waited = "waited"
                else:
                    waited = "unavailable"  # every waiting slot taken: answer now
        response = conditional(request, kept, kept.gate_document)
        if waited:
            response["X-Gate-Wait"] = waited
        return response

    def _environment_asked(self, query: Any) -> tuple[Release, Environment] | None:
        """With ?environment=: the release (its stages loaded) and that environment; a slug
        that names no environment, or one no stage of the release runs in, is a 400."""
        slug = query.validated_data.get("environment")
        if not slug:
            return None
        release = get_for(
            actor_for(self.request),
            Release.objects.select_related("current_stage").prefetch_related("stages"),
            pk=self.kwargs["pk"],
        )
        environment = Environment.objects.filter(slug=slug).first()
        if environment is None:
            known = ", ".join(Environment.objects.values_list("slug", flat=True))
            raise ValidationError(
                {"environment": [f"{slug!r} is no environment here; known: {known or 'none'}."]}
            )
        if release.percentage_in(environment) is None:
            where = sorted({stage.environment.slug for stage in release.stages.all()})
            raise ValidationError(
                {
                    "environment": [
                        f"Release #{release.pk} never runs in {slug!r}: its stages run in "
                        f"{', '.join(where)}."
                    ]
                }
            )
        return release, environment

    @extend_schema(
        parameters=[s.EnvironmentQuerySerializer], responses={200: s.TrafficSerializer, 304: None}
    )
    @action(detail=True, methods=["get"])
    def traffic(self, request: Request, pk: str | None = None) -> Response:
        """The percentage of traffic the release should serve now (ETag / If-None-Match);
        `?environment=staging`: in that environment (100 where it was promoted past)."""
        query = s.EnvironmentQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        kept = self._kept()
        asked = self._environment_asked(query)
        if asked is None:
            return conditional(request, kept, lambda: kept.traffic)
        # Computed afresh; every change of it is a transition, which the kept version follows,
        # so the ETag is the kept one's, told apart per environment.
        release, environment = asked
        return conditional(
            request,
            kept,
            lambda: verdicts.traffic_in(release, environment),
            etag=f'"{kept.release_id}-{kept.version}-{environment.slug}"',
        )

    @extend_schema(
        parameters=[s.ReleaseEventQuerySerializer],
        responses={200: s.ReleaseEventPageSerializer},
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, pk: str | None = None) -> Response:
        """The release's story, oldest first and paged: every transition, sign-off, checklist
        tick and override, with who, why and the data (an automatic pause or rollback holds
        the criterion, value and threshold in `data.breaches`). `?verb=rolled_back&verb=paused`
        keeps only those."""
        query = s.ReleaseEventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        release = self.get_object()
        events = Event.objects.filter(release=release).select_related("stage")
        if verbs := query.validated_data.get("verb"):
            events = events.filter(verb__in=verbs)
        page = self.paginate_queryset(events.order_by("created_at", "id"))
        return self.get_paginated_response(s.ReleaseEventSerializer(page, many=True).data)

    @extend_schema(
        parameters=[s.BucketQuerySerializer],
        responses={200: s.BucketSerializer},
    )
    @action(detail=True, methods=["get"])
    def bucket(self, request: Request, pk: str | None = None) -> Response:
        """Deterministic treatment/control assignment of one unit at the current percentage
        (`?environment=staging`: at that environment's, as traffic/ answers it)."""
        query = s.BucketQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        unit = query.validated_data["unit"]
        asked = self._environment_asked(query)
        if asked is None:
            release = self.get_object()
            variant, percentage = release.bucket(unit)
        else:
            release, environment = asked
            variant, percentage = release.bucket(unit, release.percentage_in(environment))
        return Response({"variant": variant, "percentage": percentage, "unit": unit})


KEPT_FIELDS = [
    f"kept_verdict__{f.name}" for f in KeptVerdict._meta.concrete_fields if f.name != "release"
]


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (weak or strong, or "*")."""
    return etag in parse_etags(header) or f"W/{etag}" in parse_etags(header) or header == "*"


def conditional(
    request: Request, kept: KeptVerdict, body: Any, *, etag: str | None = None
) -> Response:
    """304 when the caller's If-None-Match holds the kept verdict's ETag, else 200 with `body()`.

    Cache-Control no-cache: a cache may keep the answer but must ask again each time, and the
    ETag makes that question cheap (rolloutdesk reads a row, sends no body).
    """
    etag = etag or kept.etag
    seen = request.headers.get("If-None-Match", "")
    if seen and etag_matches(seen, etag):
        response = Response(status=status.HTTP_304_NOT_MODIFIED)
    else:
        response = Response(body())
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response


def broker_status(timeout: float = 2.0) -> str:
    """'ok' when the Celery broker accepts a connection within the timeout, else 'down'."""
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=timeout
            )
    except Exception as exc:  # any failure to reach the broker means "down", with the cause logged
        logger.warning("Broker health check failed: %s", exc)
        return "down"
    return "ok"


def database_status() -> str:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # the database not answering, whatever the driver's error class
        logger.warning("Database health check failed: %s", exc)
        return "down"
    return "ok"


class HealthView(APIView):
    """Liveness for load balancers (503 only when the database does not answer), and the
    periodic jobs that stopped running (`jobs.stale`)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: s.HealthSerializer, 503: s.HealthSerializer})
    def get(self, request: Request) -> Response:
        database = database_status()
        broker = broker_status()
        healthy = database == "ok"
        # Stale periodic jobs are reported, never a 503: the web process itself is fine, and a
        # load balancer taking it out of service would not restart beat or a worker.
        jobs = heartbeat.summary() if healthy else {"status": "unknown", "stale": []}
        return Response(
            {
                "status": "ok" if healthy else "down",
                "database": database,
                "broker": broker,
                "jobs": jobs,
            },
            status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

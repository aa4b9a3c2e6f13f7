"""The CI contract: /api/v1/..."""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from . import (
    reads,
    views,
    views_checks,
    views_config,
    views_incidents,
    views_runbooks,
    views_signoffs,
)
from .views_checklists import ReleaseChecklistsView, ReleaseChecksView

router = DefaultRouter()
router.register("services", views.ServiceViewSet, basename="service")
router.register("plans", views.PlanViewSet, basename="plan")
router.register("releases", views.ReleaseViewSet, basename="release")


def _route(name: str) -> Any:
    """The router's view of the URL named `name`."""
    return next(pattern.callback for pattern in router.urls if pattern.name == name)


urlpatterns = [
    path("health/", views.HealthView.as_view(), name="health"),
    path("config/apply", views_config.ConfigApplyView.as_view(), name="config-apply"),
    path("config/schema.json", views_config.config_schema, name="config-schema"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path(
        "releases/<int:pk>/signoffs/",
        views_signoffs.ReleaseSignOffsView.as_view(),
        name="release-signoffs",
    ),
    path(
        "releases/<int:pk>/artifact/",
        views_signoffs.ReleaseArtifactView.as_view(),
        name="release-artifact",
    ),
    path("releases/<int:pk>/checks/", ReleaseChecksView.as_view(), name="release-checks"),
    path(
        "releases/<int:pk>/checklists/",
        ReleaseChecklistsView.as_view(),
        name="release-checklists",
    ),
    path("samples/", views_checks.SamplesView.as_view(), name="samples"),
    path(
        "releases/<int:pk>/checks/latest/",
        views_checks.LatestChecksView.as_view(),
        name="release-checks-latest",
    ),
    path("incidents/", views_incidents.IncidentListView.as_view(), name="incident-list"),
    path(
        "incidents/<int:pk>/", views_incidents.IncidentDetailView.as_view(), name="incident-detail"
    ),
    path(
        "incidents/<int:pk>/acknowledge/",
        views_incidents.IncidentActionView.as_view(action_name="acknowledge"),
        name="incident-acknowledge",
    ),
    path(
        "incidents/<int:pk>/resolve/",
        views_incidents.IncidentActionView.as_view(action_name="resolve"),
        name="incident-resolve",
    ),
    path(
        "hooks/alertmanager/",
        views_incidents.AlertmanagerHookView.as_view(),
        name="hook-alertmanager",
    ),
    # As the issue and docs/runbooks.md write them, with or without the trailing slash.
    re_path(
        r"^runbooks/preview/?$",
        views_runbooks.RunbookPreviewView.as_view(),
        name="runbook-preview",
    ),
    re_path(
        r"^runbooks/import/?$", views_runbooks.RunbookImportView.as_view(), name="runbook-import"
    ),
    # CI's polls of the kept verdict, answered in one query when plain; anything else goes on
    # to the router's DRF action of the same path (apps/api/reads.py).
    *[
        re_path(
            rf"^releases/(?P<pk>[0-9]+)/{endpoint}/$",
            reads.lean(endpoint, _route(f"release-{endpoint}")),
        )
        for endpoint in ("gate", "traffic")
    ],
    path("", include(router.urls)),
    # Last: any other path under /api/v1/ (a malformed id such as releases/abc/checks/ included)
    # answers the API's JSON 404, not the site's HTML page.
    # [\s\S], not ".": an id holding a newline (releases/%0A/checklists/) is a path too.
    re_path(r"^[\s\S]*\Z", csrf_exempt(lambda request, *args, **kwargs: _not_found(request))),
]


def _not_found(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"detail": f"No API endpoint at {request.path}; see /api/v1/docs/."}, status=404
    )

"""The CI contract: /api/v1/..."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from . import views, views_checks, views_signoffs

router = DefaultRouter()
router.register("services", views.ServiceViewSet, basename="service")
router.register("plans", views.PlanViewSet, basename="plan")
router.register("releases", views.ReleaseViewSet, basename="release")

urlpatterns = [
    path("health/", views.HealthView.as_view(), name="health"),
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
    path("samples/", views_checks.SamplesView.as_view(), name="samples"),
    path(
        "releases/<int:pk>/checks/latest/",
        views_checks.LatestChecksView.as_view(),
        name="release-checks-latest",
    ),
    path("", include(router.urls)),
]

"""Top-level URLs: the pages (dashboard at /), the admin, the API and OFREP."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "rolloutdesk"
admin.site.site_title = "rolloutdesk"
admin.site.index_title = "Rollouts, plans and services"

urlpatterns = [
    # First: single sign-on's sign-out and admin sign-in stand in for the local ones (each acts
    # as the local one while OIDC_ISSUER is unset).
    path("", include("apps.sso.urls")),
    path("", include("apps.pages.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.api.urls")),
    # OpenFeature's remote evaluation protocol: a service's rollout as a flag (docs/ci.md).
    path("ofrep/v1/", include("apps.api.ofrep_urls")),
    path("", include("apps.pages.signoff_urls")),
    path("", include("apps.incidents.urls")),
    path("", include("apps.reports.urls")),
    path("", include("apps.slack.urls")),
    path("", include("apps.exporter.urls")),
]

if settings.BENCH_FLOOR_VIEW:
    urlpatterns.append(path("", include("apps.core.urls")))

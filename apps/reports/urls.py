"""Report pages: the archive, one report, its charts and its CSV table."""

from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("reports/", views.report_list, name="list"),
    path("reports/<int:pk>/", views.report_detail, name="detail"),
    path("reports/<int:pk>/csv/", views.report_csv, name="csv"),
    path("reports/<int:pk>/charts/<slug:name>.png", views.report_chart, name="chart"),
]

"""Report pages: the archive list, one report as it was emailed, its charts and its CSV table."""

from __future__ import annotations

from typing import Any

from csp.decorators import csp_update
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from apps.core import csv_export

from .models import Report, ReportChart
from .services import render_page_html

VIEW_PERM = "reports.view_report"
NO_VIEW = (
    "Your account has no role that may see reports. Ask a release manager to add you to "
    "the Viewers, Approvers or Release managers group."
)
PAGE_SIZE = 50

# The CSV tables a report offers: columns and where the rows are in its content.
TABLES: dict[str, tuple[list[str], Any]] = {
    "releases": (
        [
            "service",
            "version",
            "environment",
            "production",
            "status",
            "stage",
            "traffic_percentage",
            "started_at",
            "finished_at",
            "lead_time_seconds",
            "incidents",
        ],
        lambda c: [
            {**row, "lead_time_seconds": row.get("lead_time")} for row in c["releases"]["rows"]
        ],
    ),
    "dora": (
        [
            "service",
            "deployments",
            "deployments_per_day",
            "lead_time_seconds",
            "finished",
            "failed",
            "change_failure_rate",
            "time_to_restore_seconds",
            "restored",
        ],
        lambda c: [
            {
                **keys,
                "service": name,
                "lead_time_seconds": keys["lead_time"],
                "time_to_restore_seconds": keys["time_to_restore"],
            }
            for name, keys in [(c["scope"]["name"], c["dora"]["overall"]["current"])]
            + [(row["service"], row["current"]) for row in c["dora"]["services"]]
        ],
    ),
    "checks": (
        ["release", "criterion", "evaluations", "passed", "failed", "pass_rate", "worst"],
        lambda c: c["checks"]["rows"],
    ),
}


def _forbidden(request: HttpRequest) -> HttpResponse:
    return render(request, "reports/forbidden.html", {"message": NO_VIEW}, status=403)


@login_required
@require_GET
def report_list(request: HttpRequest) -> HttpResponse:
    """Every generated report, newest period first, with its delivery counts."""
    if not request.user.has_perm(VIEW_PERM):
        return _forbidden(request)
    reports = (
        Report.objects.select_related("service")
        .with_delivery_counts()
        .defer("content", "html", "text")
        .order_by("-period_start", "-id")
    )
    page = Paginator(reports, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "reports/list.html", {"page": page, "reports": page.object_list})


@login_required
@require_GET
# The page shows the report exactly as emailed, and mail clients need inline styles: style
# attributes only (autoescaped content, so nothing typed can add one); scripts stay strict.
@csp_update({"style-src-attr": ["'unsafe-inline'"]})
def report_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The report as its recipients read it, with links to its charts and CSV."""
    if not request.user.has_perm(VIEW_PERM):
        return _forbidden(request)
    report = get_object_or_404(Report.objects.select_related("service"), pk=pk)
    deliveries = list(report.deliveries.order_by("address"))
    context = {
        "report": report,
        "body": render_page_html(report),
        "deliveries": deliveries,
        "tables": list(TABLES),
    }
    return render(request, "reports/detail.html", context)


@login_required
@require_GET
def report_chart(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    if not request.user.has_perm(VIEW_PERM):
        return _forbidden(request)
    chart = get_object_or_404(ReportChart, report_id=pk, name=name)
    response = HttpResponse(bytes(chart.png), content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"  # a stored report never changes
    return response


@login_required
@require_GET
def report_csv(request: HttpRequest, pk: int) -> HttpResponse:
    """One of the report's tables as CSV (?table=releases, dora or checks)."""
    if not request.user.has_perm(VIEW_PERM):
        return _forbidden(request)
    report = get_object_or_404(Report, pk=pk)
    table = request.GET.get("table", "releases")
    if table not in TABLES:
        raise Http404(f"No table {table!r}; say one of {', '.join(TABLES)}.")
    columns, rows = TABLES[table]
    first_day = report.content.get("period", {}).get("first_day", "")
    filename = f"report-{report.pk}-{report.kind}-{first_day}-{table}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv_export.DictWriter(response, columns)
    writer.writeheader()
    writer.writerows(rows(report.content))
    return response

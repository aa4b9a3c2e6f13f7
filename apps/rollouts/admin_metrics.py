"""The release admin's "run metric checks now" action (imported by apps/rollouts/admin.py)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.releases.choices import ReleaseStatus

from .admin import ReleaseAdmin
from .analysis import run_checks_now


@admin.action(description="Run metric checks now", permissions=["operate"])
def run_metric_checks(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> None:
    """Evaluate (and act on) the criteria of the selected running releases at once."""
    running = list(queryset.filter(status=ReleaseStatus.IN_PROGRESS).order_by("pk"))
    skipped = queryset.exclude(status=ReleaseStatus.IN_PROGRESS).count()
    results = acted = 0
    for release in running:
        report = run_checks_now(release)
        results += report.results
        acted += len(report.paused) + len(report.rolled_back)
    text = f"Checked {len(running)} running release(s): {results} criterion result(s)"
    if acted:
        text += f"; {acted} release(s) paused or rolled back by a failing criterion"
    if skipped:
        text += f"; {skipped} not running, not checked"
    modeladmin.message_user(request, text + ".", messages.WARNING if acted else messages.SUCCESS)


ReleaseAdmin.actions = [*ReleaseAdmin.actions, run_metric_checks]

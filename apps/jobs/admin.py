"""Admin: the periodic jobs' last runs and failed items, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import JobItemFailure, JobRun


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the jobs only; a person reads them (and may delete a fixed failure)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = ("job", "outcome", "finished_at", "items_done", "items_failed")
    list_filter = ("outcome",)
    search_fields = ("job",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(JobItemFailure)
class JobItemFailureAdmin(ReadOnlyAdmin):
    list_display = ("job", "item_type", "item_id", "item_label", "error_class", "count", "last_at")
    list_filter = ("job", "item_type")
    search_fields = ("item_id", "item_label", "message")
    date_hierarchy = "last_at"
    readonly_fields = (
        "job",
        "item_type",
        "item_id",
        "item_label",
        "error_class",
        "message",
        "traceback",
        "first_at",
        "last_at",
        "count",
    )

"""Admin for services, environments, plans, releases and their audit timeline.

The release admin itself (actions, gate, timeline) lives in apps/rollouts/admin.py, since it
drives the transitions.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import HttpRequest

from . import gate_inputs
from .choices import ReleaseStatus
from .models import Environment, Event, RolloutPlan, Service, StageTemplate
from .plan_stages import link_stage_formsets


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    """Services with their default plan and how many releases they have."""

    list_display = ["name", "slug", "owner_team", "default_plan", "release_count", "active_count"]
    list_select_related = ["default_plan"]
    list_filter = ["owner_team", "default_plan"]
    search_fields = ["name", "slug", "owner_team"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Service]:
        # Counted in the same query so the list costs the same for 5 services or 500.
        return (
            super()
            .get_queryset(request)
            .annotate(
                release_total=Count("releases"),
                release_active=Count(
                    "releases", filter=Q(releases__status__in=ReleaseStatus.active())
                ),
            )
        )

    @admin.display(description="Releases", ordering="release_total")
    def release_count(self, obj: Service) -> int:
        return obj.release_total

    @admin.display(description="Running or paused", ordering="release_active")
    def active_count(self, obj: Service) -> int:
        return obj.release_active


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    """Staging, production, ..."""

    list_display = ["name", "slug", "is_production", "order"]
    list_editable = ["order"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class StageTemplateInline(admin.TabularInline):
    """A plan's ordered stages, edited on the plan."""

    model = StageTemplate
    ordering = ["position"]
    fields = ["position", "name", "traffic_percentage", "min_soak", "auto_advance"]

    def get_extra(self, request: HttpRequest, obj: RolloutPlan | None = None, **kwargs: Any) -> int:
        return 0 if obj else 3


@admin.register(RolloutPlan)
class RolloutPlanAdmin(admin.ModelAdmin):
    """Reusable plans; editing one never rewrites releases that already copied its stages."""

    list_display = ["name", "slug", "stage_summary", "release_count", "updated_at"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [StageTemplateInline]

    class Media:
        js = ["js/plan-stage-choices.js"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RolloutPlan]:
        return (
            super()
            .get_queryset(request)
            .annotate(release_total=Count("releases"))
            .prefetch_related(
                Prefetch("stages", queryset=StageTemplate.objects.order_by("position"))
            )
        )

    @admin.display(description="Stages")
    def stage_summary(self, obj: RolloutPlan) -> str:
        return " → ".join(
            f"{s.name} {s.traffic_percentage}%{' (auto)' if s.auto_advance else ''}"
            for s in obj.stages.all()
        )

    @admin.display(description="Releases", ordering="release_total")
    def release_count(self, obj: RolloutPlan) -> int:
        return obj.release_total

    def _create_formsets(self, request: HttpRequest, obj: Any, change: bool) -> tuple[list, list]:
        # The checklist and sign-off rule inlines may name a stage added on this same page.
        formsets, inlines = super()._create_formsets(request, obj, change)
        link_stage_formsets(formsets)
        return formsets, inlines

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # The plan's criteria (inlines of other apps) watch its running releases' stages.
        unfinished = form.instance.releases.exclude(status__in=ReleaseStatus.finished())
        gate_inputs.changed(releases=unfinished.values_list("pk", flat=True))


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The audit timeline: readable, never added, changed or deleted by hand."""

    list_display = ["created_at", "release", "verb", "actor_name", "actor_kind", "reason"]
    list_filter = ["verb", "actor_kind", "release__service", "release__environment"]
    list_select_related = ["release__service", "release__environment"]
    search_fields = ["actor_name", "reason", "release__version", "release__service__name"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

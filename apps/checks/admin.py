"""Admin for metric checks: metrics, sources, criteria (on plans and stages), check runs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from apps.core.actors import Actor
from apps.releases import gate_inputs
from apps.releases.admin import RolloutPlanAdmin

from .backtest import backtest, describe
from .choices import Reference, SignificanceTest, SourceKind
from .models import (
    CheckResult,
    CheckRun,
    MetricCriterion,
    MetricDefinition,
    MetricSource,
    StageCriteria,
    SuccessResolution,
)
from .success import resolve


class RecomputesGates:
    """Admin of criteria or stage minimums: a save or delete recomputes every unfinished
    release's kept gate verdict (apps.releases.gate_inputs); edits are rare, and a criterion
    may watch the releases of any plan."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)  # type: ignore[misc]
        gate_inputs.changed(every_service=True)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)  # type: ignore[misc]
        gate_inputs.changed(every_service=True)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().delete_queryset(request, queryset)  # type: ignore[misc]
        gate_inputs.changed(every_service=True)


CRITERION_FIELDS = [
    "metric",
    "comparator",
    "warning_threshold",
    "critical_threshold",
    "reference",
    "tolerance",
    "significance_test",
    "method",
    "p_value",
    "minimum_effect",
    "success",
    "decision_window",
    "for_window",
    "interval",
    "consecutive",
    "min_samples",
    "inconclusive_limit",
    "on_warning",
    "on_critical",
    "incident_severity",
    "dry_run",
    "enabled",
]


@admin.register(MetricDefinition)
class MetricDefinitionAdmin(admin.ModelAdmin):
    """What can be measured: key, unit, kind and bad direction."""

    list_display = ["key", "name", "unit", "kind", "bad_direction", "counts_traffic"]
    list_filter = ["kind", "bad_direction", "counts_traffic"]
    search_fields = ["key", "name"]


@admin.register(MetricSource)
class MetricSourceAdmin(admin.ModelAdmin):
    """Where a service's metric is read. SQL sources run queries: only superusers touch them."""

    list_display = ["metric", "service", "kind", "base_url", "database", "timeout_seconds"]
    formfield_overrides = {models.URLField: {"assume_scheme": "http"}}
    list_filter = ["kind", "service"]
    list_select_related = ["metric", "service"]
    search_fields = ["metric__key", "service__name", "query"]

    def get_form(
        self, request: HttpRequest, obj: MetricSource | None = None, change: bool = False, **kw: Any
    ) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, change=change, **kw)
        if not request.user.is_superuser and "kind" in form.base_fields:
            form.base_fields["kind"].choices = [
                c for c in form.base_fields["kind"].choices if c[0] != SourceKind.SQL
            ]
        return form

    def _sql_locked(self, request: HttpRequest, obj: MetricSource | None) -> bool:
        return obj is not None and obj.kind == SourceKind.SQL and not request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: MetricSource | None = None) -> bool:
        if self._sql_locked(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: MetricSource | None = None) -> bool:
        if self._sql_locked(request, obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: MetricSource, form: forms.Form, change: bool
    ) -> None:
        if obj.kind == SourceKind.SQL and not request.user.is_superuser:
            raise PermissionDenied("Only superusers may create or edit SQL sources.")
        super().save_model(request, obj, form, change)


# The criterion's eighteen fields in four rows: a tabular inline of them made the plan page
# 3,900 px wide in a 1,366 px window.
CRITERION_FIELDSETS = [
    (
        None,
        {
            "fields": [
                ("metric", "comparator", "warning_threshold", "critical_threshold"),
                ("on_warning", "on_critical", "incident_severity", "dry_run", "enabled"),
            ]
        },
    ),
    (
        "Compared with",
        {"fields": [("reference", "tolerance", "significance_test", "p_value")]},
    ),
    (
        "Window",
        {
            "fields": [
                ("for_window", "interval", "consecutive", "min_samples", "inconclusive_limit")
            ]
        },
    ),
]


class PlanCriterionInline(admin.StackedInline):
    """Criteria watching every stage of the plan."""

    model = MetricCriterion
    fk_name = "plan"
    fieldsets = CRITERION_FIELDSETS
    extra = 0
    verbose_name = "metric criterion (all stages)"
    verbose_name_plural = "metric criteria (all stages)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[MetricCriterion]:
        return super().get_queryset(request).select_related("metric")


# The plan page (apps/releases) shows its plan-wide criteria too.
RolloutPlanAdmin.inlines = [*RolloutPlanAdmin.inlines, PlanCriterionInline]


class StageCriterionInline(PlanCriterionInline):
    """Criteria watching this stage only."""

    fk_name = "stage_template"
    verbose_name = "metric criterion (this stage)"
    verbose_name_plural = "metric criteria (this stage)"


@admin.register(StageCriteria)
class StageCriteriaAdmin(RecomputesGates, admin.ModelAdmin):
    """Each stage of each plan, with the criteria that watch only it."""

    list_display = ["plan", "position", "name", "traffic_percentage", "min_requests", "criteria"]
    list_filter = ["plan"]
    list_select_related = ["plan"]
    ordering = ["plan__name", "position"]
    fields = ["plan", "position", "name", "traffic_percentage", "min_soak", "min_requests"]
    readonly_fields = ["plan", "position", "name", "traffic_percentage", "min_soak"]
    inlines = [StageCriterionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[StageCriteria]:
        return super().get_queryset(request).annotate(criterion_count=Count("criteria"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # stages are added on their plan

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Criteria", ordering="criterion_count")
    def criteria(self, obj: StageCriteria) -> int:
        return obj.criterion_count


@admin.register(MetricCriterion)
class MetricCriterionAdmin(RecomputesGates, admin.ModelAdmin):
    """Every criterion; "Backtest" replays the form's rule over past releases before saving."""

    change_form_template = "admin/checks/metriccriterion/change_form.html"
    list_display = [
        "label_column",
        "plan",
        "stage_template",
        "test_column",
        "on_critical",
        "incident_severity_column",
        "dry_run",
        "enabled",
    ]
    list_filter = [
        "enabled",
        "dry_run",
        "success",
        "method",
        "on_critical",
        "incident_severity",
        "metric",
        "plan",
    ]
    list_select_related = ["metric", "plan", "stage_template__plan"]
    fields = ["plan", "stage_template", *CRITERION_FIELDS]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "stage_template":
            # Every plan's stages, so each names its plan: "Progressive · 3. 25%", in plan order.
            field.queryset = field.queryset.select_related("plan").order_by(
                "plan__name", "position"
            )
            field.label_from_instance = lambda stage: f"{stage.plan.name} · {stage}"
        return field

    @admin.display(description="Criterion")
    def label_column(self, obj: MetricCriterion) -> str:
        return obj.label

    @admin.display(description="Incident severity", ordering="incident_severity")
    def incident_severity_column(self, obj: MetricCriterion) -> str:
        # Blank falls back to the setting: say which severity that is today.
        if obj.incident_severity:
            return obj.incident_severity.upper()
        return f"{settings.INCIDENTS_BREACH_SEVERITY.upper()} (setting)"

    @admin.display(description="Test")
    def test_column(self, obj: MetricCriterion) -> str:
        # Which judgment acts: the always-valid one, the fixed-horizon one, or thresholds alone.
        rule = obj.rule()
        if rule.reference == Reference.ABSOLUTE or (
            not rule.success and rule.test == SignificanceTest.NONE
        ):
            return "Thresholds only"
        method = "sequential, always valid" if rule.sequential else "fixed horizon"
        kind = "success" if rule.success else obj.get_significance_test_display()
        return f"{kind} ({method}, alpha {obj.p_value:g})"

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST" and "_backtest" in request.POST:
            return self._backtest_preview(request, object_id)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _backtest_preview(self, request: HttpRequest, object_id: str | None) -> HttpResponse:
        """Validate the posted rule and replay it without saving anything."""
        obj = self.get_object(request, object_id) if object_id else None
        if obj is None and not self.has_add_permission(request):
            raise PermissionDenied
        if obj is not None and not self.has_change_permission(request, obj):
            raise PermissionDenied
        form_class = self.get_form(request, obj, change=obj is not None)
        form = form_class(request.POST, instance=obj)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Backtest of a metric criterion",
            "form": form,
            "lines": [],
        }
        if form.is_valid():
            criterion = form.save(commit=False)  # never saved here
            replays = backtest(criterion, limit=10)
            context.update(
                criterion=criterion,
                replays=replays,
                lines=describe(criterion, replays),
            )
        return TemplateResponse(request, "admin/checks/backtest_preview.html", context)


class CheckResultInline(admin.TabularInline):
    """A run's results, read-only."""

    model = CheckResult
    fields = [
        "label",
        "verdict",
        "level",
        "value",
        "reference_value",
        "delta",
        "p_value",
        "threshold",
        "samples",
        "dry_run",
        "detail",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CheckRun)
class CheckRunAdmin(admin.ModelAdmin):
    """Every evaluation of a release's criteria: the evidence behind each decision."""

    list_display = ["started_at", "release", "stage", "trigger", "verdict", "action"]
    list_filter = ["verdict", "trigger", "release__service", "release__environment"]
    list_select_related = ["release__service", "release__environment", "stage"]
    search_fields = ["release__version", "release__service__name", "action"]
    date_hierarchy = "started_at"
    inlines = [CheckResultInline]
    readonly_fields = [
        "release",
        "stage",
        "trigger",
        "slot",
        "started_at",
        "finished_at",
        "verdict",
        "action",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SuccessResolutionForm(forms.ModelForm):
    """A release manager's decision: the release, its success criterion, and why."""

    class Meta:
        model = SuccessResolution
        fields = ["release", "criterion", "reason"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        release, criterion = data.get("release"), data.get("criterion")
        if release is not None and criterion is not None and not self.errors:
            # The domain function decides and writes; the form only reports its refusal.
            # Its ValidationError names the field at fault (reason, criterion).
            self.instance = resolve(
                release, criterion, actor=self.actor, reason=data.get("reason", "")
            )
        return data


@admin.register(SuccessResolution)
class SuccessResolutionAdmin(admin.ModelAdmin):
    """Success decisions: a success criterion inconclusive after its window, decided by a person
    with a reason (apps/checks/success.py). Append-only: they cannot be edited or deleted."""

    form = SuccessResolutionForm
    list_display = ["release", "criterion", "stage", "actor", "created_at"]
    list_select_related = ["release", "criterion__metric", "stage"]
    readonly_fields = ["stage", "actor", "evidence", "created_at"]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        form.actor = Actor.for_user(request.user)
        return form

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["release", "criterion", "reason"]
        return ["release", "criterion", "reason", *self.readonly_fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        pass  # resolve() saved it in the form's clean, with its Event, in one transaction

"""Admin: sign-off rules inline on plans, sign-offs and requests read-only, freeze windows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.releases import gate_inputs
from apps.releases.admin import RolloutPlanAdmin
from apps.releases.plan_stages import StageChoiceFormSet, stage_key

from .models import FreezeWindow, ReleaseSignOffRule, SignOff, SignOffRequest, SignOffRule


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records people make through the sign-off page or the system: viewed, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SignOffRuleFormSet(StageChoiceFormSet):
    """One rule per gate: two rules on the start (or on one stage) are refused by name. A rule
    may guard leaving a stage added on the same page."""

    stage_empty_label = "The start of the release"

    def clean(self) -> None:
        super().clean()
        seen: set[object] = set()
        for form in self.forms:
            if not getattr(form, "cleaned_data", None) or form.cleaned_data.get("DELETE"):
                continue
            template = form.cleaned_data.get("stage_template")
            key = stage_key(template)
            if key in seen:
                where = f"leaving stage {template.name}" if template else "the start"
                raise ValidationError(f"Only one sign-off rule per gate: {where} has two.")
            seen.add(key)


class SignOffRuleInline(admin.StackedInline):
    """Who must sign the plan's start and each stage's exit; copied onto each new release."""

    model = SignOffRule
    formset = SignOffRuleFormSet
    extra = 0
    fields = [
        "stage_template",
        "groups",
        "quorum",
        "approvals_needed",
        "valid_for",
        "author_may_approve",
    ]
    filter_horizontal = ["groups"]
    verbose_name = "sign-off rule"
    # Said once, for the whole group (Django would pluralise the last word of a long name:
    # "…AFTER THE CHANGE)S").
    verbose_name_plural = "Sign-off rules (copied onto releases registered after the change)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[SignOffRule]:
        return super().get_queryset(request).select_related("stage_template")


RolloutPlanAdmin.inlines = [*RolloutPlanAdmin.inlines, SignOffRuleInline]


class SignOffStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("standing", "Standing"), ("withdrawn", "Withdrawn"), ("lapsed", "Lapsed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SignOff]) -> QuerySet[SignOff]:
        value = self.value()
        if value == "standing":
            return queryset.standing()
        if value == "withdrawn":
            return queryset.filter(withdrawn_at__isnull=False)
        if value == "lapsed":
            return queryset.filter(lapsed_at__isnull=False)
        return queryset


@admin.register(SignOff)
class SignOffAdmin(ReadOnlyAdmin):
    """Every go and no-go, as given; withdrawals and lapses are stamped, never deleted."""

    list_display = [
        "created_at",
        "release",
        "gate",
        "signer",
        "decision",
        "comment",
        "state",
    ]
    list_filter = [
        "decision",
        SignOffStateFilter,
        "release__service",
        "release__environment",
        ("signer", admin.RelatedOnlyFieldListFilter),
    ]
    list_select_related = ["release__service", "release__environment", "stage", "signer"]
    search_fields = ["signer__username", "comment", "release__version", "release__service__name"]
    date_hierarchy = "created_at"

    @admin.display(description="Gate")
    def gate(self, obj: SignOff) -> str:
        return f"leaving {obj.stage.name}" if obj.stage else "start"

    @admin.display(description="State")
    def state(self, obj: SignOff) -> str:
        return obj.state()


@admin.register(SignOffRequest)
class SignOffRequestAdmin(ReadOnlyAdmin):
    """Who was asked to sign which gate, when the email and the last reminder went out."""

    list_display = [
        "requested_at",
        "release",
        "user",
        "early",
        "requested_by",
        "sent_at",
        "reminded_at",
        "reminders_sent",
    ]
    list_filter = ["early", "release__service", ("user", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["release__service", "release__environment", "user"]
    search_fields = ["user__username", "release__version", "release__service__name"]


@admin.register(ReleaseSignOffRule)
class ReleaseSignOffRuleAdmin(ReadOnlyAdmin):
    """Each release's own copy of its plan's rules, as they bind it."""

    list_display = ["release", "gate", "rule"]
    list_select_related = ["release__service", "release__environment", "stage"]
    list_filter = ["release__service", "quorum"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReleaseSignOffRule]:
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="Gate")
    def gate(self, obj: ReleaseSignOffRule) -> str:
        return f"leaving {obj.stage.name}" if obj.stage else "start"

    @admin.display(description="Rule")
    def rule(self, obj: ReleaseSignOffRule) -> str:
        return obj.describe()


@admin.register(FreezeWindow)
class FreezeWindowAdmin(admin.ModelAdmin):
    """Change freezes: one-off or weekly in a time zone, for some or all services."""

    list_display = ["name", "schedule", "scope", "active_now", "enabled"]
    list_filter = ["enabled", "recurrence", "services", "environments"]
    search_fields = ["name", "reason"]
    filter_horizontal = ["services", "environments"]
    fieldsets = [
        (None, {"fields": ["name", "reason", "enabled"]}),
        (
            "Scope",
            {
                "fields": ["services", "environments"],
                "description": "Leave a list empty to freeze every service or environment.",
            },
        ),
        ("When", {"fields": ["recurrence", "time_zone"]}),
        ("One-off", {"fields": ["starts_at", "ends_at"]}),
        (
            "Weekly",
            {
                "fields": [
                    ("weekly_start_day", "weekly_start_time"),
                    ("weekly_end_day", "weekly_end_time"),
                ],
                "description": "Wall-clock times in the time zone above, e.g. Friday 16:00 to "
                "Monday 08:00 Europe/Berlin; daylight saving is followed.",
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FreezeWindow]:
        return super().get_queryset(request).prefetch_related("services", "environments")

    # A window may cover every service: each save or delete recomputes every unfinished
    # release's gate (freezes are edited rarely; the tick handles their starts and ends).
    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        gate_inputs.changed(every_service=True)

    def delete_model(self, request: HttpRequest, obj: FreezeWindow) -> None:
        super().delete_model(request, obj)
        gate_inputs.changed(every_service=True)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[FreezeWindow]) -> None:
        super().delete_queryset(request, queryset)
        gate_inputs.changed(every_service=True)

    @admin.display(description="When")
    def schedule(self, obj: FreezeWindow) -> str:
        return obj.schedule_display()

    @admin.display(description="Applies to")
    def scope(self, obj: FreezeWindow) -> str:
        services = ", ".join(s.name for s in obj.services.all()) or "all services"
        environments = ", ".join(e.name for e in obj.environments.all()) or "all environments"
        return f"{services} in {environments}"

    @admin.display(description="Active now", boolean=True)
    def active_now(self, obj: FreezeWindow) -> bool:
        return obj.is_active_at(timezone.now())

"""Admin: incidents (timeline, acknowledge / resolve), on-call setup, notification deliveries."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.actors import Actor
from apps.core.durations import format_duration
from apps.outbox.admin import resend_unsent
from apps.releases.admin import ServiceAdmin

from . import lifecycle
from .models import (
    Contact,
    EscalationLevel,
    EscalationPolicy,
    Incident,
    IncidentEvent,
    IncidentRouting,
    NotificationDelivery,
    OnCallRotation,
    RotationMember,
    RotationOverride,
    RoutingRule,
)
from .models.deliveries import redact_url

# How many incident names one message lists before it says "and N more".
MESSAGE_NAME_LIMIT = 10


class ReadOnlyInline(admin.TabularInline):
    """An inline nobody edits: history rows."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IncidentEventInline(ReadOnlyInline):
    """The incident's timeline, oldest first."""

    model = IncidentEvent
    fields = ["created_at", "verb", "what", "actor_name", "reason"]
    readonly_fields = fields
    ordering = ["created_at", "id"]
    verbose_name_plural = "timeline"

    @admin.display(description="What")
    def what(self, obj: IncidentEvent) -> str:
        return obj.summary()


class DeliveryInline(ReadOnlyInline):
    """Every notification sent (or waiting) about the incident."""

    model = NotificationDelivery
    fields = ["channel", "target", "level", "round", "status", "attempts", "last_error", "sent_at"]
    readonly_fields = fields
    ordering = ["created_at", "id"]


class IncidentForm(forms.ModelForm):
    """Opening (saved through lifecycle.open_incident) or editing an incident by hand."""

    class Meta:
        model = Incident
        fields = ["service", "title", "severity", "description", "release", "policy"]
        help_texts = {
            "policy": "Leave empty: the first routing rule that matches, else the service's "
            "policy, chooses. Named here, this policy is paged instead.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        service = cleaned.get("service") or getattr(self.instance, "service", None)
        release = cleaned.get("release")
        if service and release and release.service_id != service.pk:
            self.add_error("release", f"This release is not a release of {service}.")
        return cleaned


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents: opened here or automatically; status changes only through the actions."""

    list_display = [
        "id",
        "title",
        "service",
        "severity",
        "status",
        "source",
        "opened_at",
        "time_to_ack",
        "time_to_resolve_column",
        "release",
        "policy",
    ]
    list_display_links = ["id", "title"]
    list_filter = ["status", "severity", "source", "routed_by", "service"]
    list_select_related = ["service", "release", "policy"]
    search_fields = ["title", "fingerprint", "service__name", "service__slug"]
    date_hierarchy = "opened_at"
    actions = ["acknowledge_incidents", "resolve_incidents"]
    inlines = [IncidentEventInline, DeliveryInline]
    form = IncidentForm
    fields = [
        "service",
        "title",
        "severity",
        "description",
        "release",
        "status",
        "source",
        "fingerprint",
        "link",
        "policy",
        "policy_chosen_by",
        "opened_at",
        "acknowledged_at",
        "mitigated_at",
        "resolved_at",
        "trigger_count",
        "escalation_step",
        "escalation_timetable",
        "labels",
        "page_link",
    ]
    # Editable after opening: title, description, severity and release (recorded in the timeline).
    change_readonly_fields = [
        "service",
        "status",
        "source",
        "fingerprint",
        "link",
        "policy",
        "policy_chosen_by",
        "opened_at",
        "acknowledged_at",
        "mitigated_at",
        "resolved_at",
        "trigger_count",
        "escalation_step",
        "escalation_timetable",
        "labels",
        "page_link",
    ]

    def get_fields(self, request: HttpRequest, obj: Incident | None = None) -> list[str]:
        return list(IncidentForm.Meta.fields) if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Incident | None = None) -> list[str]:
        return [] if obj is None else self.change_readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Incident | None) -> list:
        return [] if obj is None else self.inlines

    def has_delete_permission(self, request: HttpRequest, obj: Incident | None = None) -> bool:
        # Deleting an incident would erase its timeline; resolve it instead.
        return False

    def has_respond_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(lifecycle.RESPOND_PERM)

    def save_model(
        self, request: HttpRequest, obj: Incident, form: forms.Form, change: bool
    ) -> None:
        actor = Actor.for_user(request.user)
        data = form.cleaned_data
        if change:
            changes = {name: data[name] for name in form.changed_data if name in data}
            if changes:
                lifecycle.update(obj, actor=actor, **changes)
            return
        incident = lifecycle.open_incident(
            service=data["service"],
            title=data["title"],
            severity=data["severity"],
            description=data["description"],
            release=data["release"],
            policy=data.get("policy"),
            actor=actor,
        )
        # The admin goes on with the form's instance (log entry, redirect): make it the incident
        # open_incident saved.
        for field in Incident._meta.concrete_fields:
            setattr(obj, field.attname, getattr(incident, field.attname))
        obj._state.adding, obj._state.db = False, incident._state.db

    @admin.display(description="Time to ack.")
    def time_to_ack(self, obj: Incident) -> str:
        return format_duration(obj.time_to_acknowledge)

    @admin.display(description="Time to resolve")
    def time_to_resolve_column(self, obj: Incident) -> str:
        return format_duration(obj.time_to_resolve)

    @admin.display(description="Escalation timetable")
    def escalation_timetable(self, obj: Incident) -> str:
        """The timetable frozen onto the incident, which may differ from its policy's today."""
        timetable = obj.timetable
        if timetable is None:
            return "no policy: nobody is paged"
        rows = format_html_join(
            "",
            "<li>{} after {} min: {} ({})</li>",
            (
                (lv.label, lv.after_minutes, lv.who_display(), lv.condition_display())
                for lv in timetable.levels
            ),
        )
        return format_html(
            "{}, escalating {} (frozen {})<ol>{}</ol>",
            timetable.policy_name,
            timetable.rule_text(),
            timetable.frozen_at,
            rows,
        )

    @admin.display(description="Policy chosen by")
    def policy_chosen_by(self, obj: Incident) -> str:
        # The note was written at opening: the rule may have been edited or deleted since.
        if obj.routing_rule_id is None:
            return obj.routing_note or obj.get_routed_by_display()
        url = reverse("admin:incidents_routingrule_change", args=[obj.routing_rule_id])
        return format_html('{} <a href="{}">(the rule today)</a>', obj.routing_note, url)

    @admin.display(description="Page")
    def page_link(self, obj: Incident) -> str:
        url = reverse("incidents:detail", args=[obj.pk])
        return format_html('<a href="{}">Incident page (acknowledge, resolve, timeline)</a>', url)

    @admin.action(description="Acknowledge the selected incidents", permissions=["respond"])
    def acknowledge_incidents(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._change(request, queryset, "acknowledge", "Acknowledged")

    @admin.action(description="Resolve the selected incidents", permissions=["respond"])
    def resolve_incidents(self, request: HttpRequest, queryset: QuerySet[Incident]) -> None:
        self._change(request, queryset, "resolve", "Resolved")

    def _change(
        self, request: HttpRequest, queryset: QuerySet[Incident], action: str, done: str
    ) -> None:
        actor = Actor.for_user(request.user)
        changed: list[str] = []
        for incident in queryset.select_related("service").order_by("pk"):
            try:
                getattr(lifecycle, action)(incident, actor=actor, reason="From the admin.")
            except lifecycle.IncidentError as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                changed.append(f"#{incident.pk}")
        if changed:
            more = len(changed) - MESSAGE_NAME_LIMIT
            names = ", ".join(changed[:MESSAGE_NAME_LIMIT]) + (
                f" and {more} more" if more > 0 else ""
            )
            self.message_user(request, f"{done} {len(changed)} incident(s): {names}.")


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    """People who can be paged."""

    list_display = ["name", "role", "email", "phone", "chat_handle", "user", "active"]
    list_filter = ["active", "role"]
    list_select_related = ["user"]
    search_fields = ["name", "email", "role", "chat_handle"]
    autocomplete_fields = ["user"]


class LevelFormSet(BaseInlineFormSet):
    """Levels come later as they go up: L2 is not paged before L1."""

    def clean(self) -> None:
        super().clean()
        levels = sorted(
            (form.cleaned_data["position"], form.cleaned_data.get("after_minutes") or 0)
            for form in self.forms
            if form.cleaned_data
            and not form.cleaned_data.get("DELETE")
            and form.cleaned_data.get("position") is not None
        )
        for (lower, before), (higher, after) in zip(levels, levels[1:], strict=False):
            if after < before:
                raise forms.ValidationError(
                    f"L{higher} comes after {after} min, before L{lower} ({before} min): "
                    "a higher level is paged later."
                )


class EscalationLevelInline(admin.TabularInline):
    model = EscalationLevel
    formset = LevelFormSet
    fields = ["position", "after_minutes", "contacts", "rotation", "min_severity"]
    autocomplete_fields = ["contacts", "rotation"]
    ordering = ["position"]
    extra = 0


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    """Escalation policies with their levels: the runbooks' "who to call, after how long"."""

    list_display = ["name", "escalate_while", "repeat_times", "services", "rules"]
    search_fields = ["name"]
    inlines = [EscalationLevelInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[EscalationPolicy]:
        return super().get_queryset(request).prefetch_related("routings__service", "routing_rules")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Saved (a policy may be built in steps), but never silently: a level with no active
        # contact and no rotation pages nobody when an incident reaches it.
        silent = [
            level.label
            for level in form.instance.levels.prefetch_related("contacts").order_by("position")
            if level.rotation_id is None and not any(c.active for c in level.contacts.all())
        ]
        if silent:
            one = len(silent) == 1
            messages.warning(
                request,
                f"{', '.join(silent)} of {form.instance.name} page{'s' if one else ''} nobody: "
                "add an active contact or an on-call rotation, or incidents reaching "
                f"{'it' if one else 'them'} are paged to no one.",
            )

    @admin.display(description="Services")
    def services(self, obj: EscalationPolicy) -> str:
        return ", ".join(r.service.name for r in obj.routings.all()) or "—"

    @admin.display(description="Routing rules")
    def rules(self, obj: EscalationPolicy) -> str:
        return ", ".join(r.name for r in obj.routing_rules.all()) or "—"


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    """The routing table: tried by position, the first rule matching an incident chooses its
    policy; no match, the service's policy."""

    list_display = [
        "position",
        "name",
        "enabled",
        "service",
        "conditions",
        "policy",
        "incidents_routed",
    ]
    list_display_links = ["name"]
    list_editable = ["position", "enabled"]
    list_filter = ["enabled", "policy", "service"]
    list_select_related = ["service", "policy"]
    search_fields = ["name", "matchers", "policy__name"]
    autocomplete_fields = ["service", "policy"]
    fields = [
        "position",
        "name",
        "enabled",
        "service",
        "source",
        "min_severity",
        "matchers",
        "policy",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoutingRule]:
        return super().get_queryset(request).annotate(routed=Count("incidents"))

    @admin.display(description="When")
    def conditions(self, obj: RoutingRule) -> str:
        return obj.conditions_text()

    @admin.display(description="Incidents routed", ordering="routed")
    def incidents_routed(self, obj: RoutingRule) -> int:
        return obj.routed


class RotationMemberInline(admin.TabularInline):
    model = RotationMember
    fields = ["position", "contact"]
    autocomplete_fields = ["contact"]
    ordering = ["position"]
    extra = 0


class RotationOverrideInline(admin.TabularInline):
    model = RotationOverride
    fields = ["contact", "starts_at", "ends_at", "reason"]
    autocomplete_fields = ["contact"]
    ordering = ["-starts_at"]
    extra = 0


@admin.register(OnCallRotation)
class OnCallRotationAdmin(admin.ModelAdmin):
    """Rotations: members in turn, overrides, and a preview of the next four hand-offs."""

    list_display = ["name", "time_zone", "handoff_weekday", "handoff_time", "length_days"]
    search_fields = ["name"]
    inlines = [RotationMemberInline, RotationOverrideInline]
    readonly_fields = ["on_call_now", "next_handoffs"]
    fields = [
        "name",
        "description",
        "time_zone",
        "handoff_weekday",
        "handoff_time",
        "length_days",
        "start_date",
        "on_call_now",
        "next_handoffs",
    ]

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            # The preview reads members and overrides many times: load them once.
            obj = (
                OnCallRotation.objects.prefetch_related("members__contact", "overrides__contact")
                .filter(pk=obj.pk)
                .first()
            )
        return obj

    @admin.display(description="On call now")
    def on_call_now(self, obj: OnCallRotation) -> str:
        if obj.pk is None:
            return "—"
        contact = obj.on_call_at(timezone.now())
        return str(contact) if contact else "nobody"

    @admin.display(description="Next hand-offs")
    def next_handoffs(self, obj: OnCallRotation) -> str:
        if obj.pk is None:
            return "Saved rotations show their next hand-offs here."
        handoffs = obj.handoffs(timezone.now(), count=4)
        if not handoffs:
            return "No hand-off ahead (add members)."
        rows = (
            (
                f"{h.at.astimezone(obj.zone):%a %Y-%m-%d %H:%M %Z}",
                str(h.contact) if h.contact else "nobody",
                " (override)" if h.override else "",
            )
            for h in handoffs
        )
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}: {}{}</li>", rows))


class IncidentRoutingInline(admin.StackedInline):
    """On the service page: its escalation policy and chat webhook."""

    model = IncidentRouting
    fields = ["policy", "webhook_url"]
    autocomplete_fields = ["policy"]
    extra = 1
    max_num = 1

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The webhook URL is a secret (its path authenticates the post): only those who may
        # change the routing see it; the others see where it goes.
        if self.has_change_permission(request, obj):
            return list(self.fields)
        return ["policy", "webhook_host"]

    @admin.display(description="Webhook")
    def webhook_host(self, obj: IncidentRouting) -> str:
        return redact_url(obj.webhook_url) if obj.webhook_url else "—"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if self.has_change_permission(request, obj):
            return []
        return ["policy", "webhook_host"]


ServiceAdmin.inlines = [*ServiceAdmin.inlines, IncidentRoutingInline]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    """Every notification: sent, waiting for a retry, or given up; failed ones can be re-sent."""

    list_display = [
        "id",
        "incident",
        "channel",
        "shown_target",
        "level",
        "round",
        "status",
        "attempts",
        "next_attempt_at",
        "short_error",
    ]
    list_filter = ["status", "channel"]
    list_select_related = ["incident"]
    search_fields = ["target", "idempotency_key", "incident__title"]
    actions = ["resend_deliveries"]
    readonly_fields = [
        "incident",
        "event",
        "channel",
        "contact",
        "level",
        "round",
        "shown_target",
        "idempotency_key",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "next_attempt_at",
        "sent_at",
    ]
    # Only these: the raw target (a webhook's secret URL) stays off the page.
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("incidents.change_notificationdelivery")

    @admin.display(description="Last error")
    def short_error(self, obj: NotificationDelivery) -> str:
        return obj.last_error[:80]

    @admin.action(description="Re-send the selected deliveries", permissions=["resend"])
    def resend_deliveries(
        self, request: HttpRequest, queryset: QuerySet[NotificationDelivery]
    ) -> None:
        resend_unsent(self, request, queryset, noun="delivery(ies)")

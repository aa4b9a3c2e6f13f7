"""Admin: subscriptions (with "send now"), the report archive (read-only, deliveries inline,
re-send) and every delivery with its status, attempts and last error."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.outbox import engine as outbox

from . import services
from .models import Report, ReportDelivery, ReportSubscription

SEND_PERM = "reports.change_reportdelivery"


@admin.register(ReportSubscription)
class ReportSubscriptionAdmin(admin.ModelAdmin):
    """Who receives which report when; the next due time follows the schedule fields."""

    list_display = [
        "recipient",
        "frequency",
        "scope",
        "schedule",
        "time_zone",
        "next_due_at",
        "last_sent_at",
        "active",
    ]
    list_filter = ["frequency", "active", "service"]
    search_fields = ["email", "user__username", "user__email"]
    list_select_related = ["user", "service"]
    autocomplete_fields = ["user"]
    readonly_fields = ["next_due_at", "last_sent_at", "created_at"]
    fields = [
        "user",
        "email",
        "frequency",
        "service",
        "time_zone",
        "weekday",
        "hour",
        "active",
        "next_due_at",
        "last_sent_at",
        "created_at",
    ]
    actions = ["send_now"]

    @admin.display(description="Recipient", ordering="email")
    def recipient(self, obj: ReportSubscription) -> str:
        return obj.address

    @admin.display(description="Scope", ordering="service__name")
    def scope(self, obj: ReportSubscription) -> str:
        return obj.service.name if obj.service_id else "All services"

    @admin.display(description="Sent")
    def schedule(self, obj: ReportSubscription) -> str:
        at = f"{obj.hour:02d}:00"
        if obj.frequency == "weekly":
            return f"{obj.get_weekday_display()} {at}"
        return f"daily {at}"

    @admin.action(description="Send now (the last whole period's report)", permissions=["change"])
    def send_now(self, request: HttpRequest, queryset: QuerySet[ReportSubscription]) -> None:
        sent = []
        for subscription in queryset.select_related("user", "service"):
            delivery = services.send_now(subscription)
            sent.append(f"{delivery.report.period_label} to {delivery.address}")
        self.message_user(
            request, f"Sending {len(sent)} report(s): {'; '.join(sent)}.", messages.SUCCESS
        )


class DeliveryInline(admin.TabularInline):
    """Each recipient of the report: status, attempts, last error."""

    model = ReportDelivery
    extra = 0
    can_delete = False
    fields = ["address", "status", "attempts", "sent_at", "next_attempt_at", "last_error"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _resend(
    modeladmin: admin.ModelAdmin, request: HttpRequest, deliveries: QuerySet, include_sent: bool
) -> None:
    ids = outbox.resend(deliveries, include_sent=include_sent)
    if ids:
        modeladmin.message_user(request, f"Queued {len(ids)} delivery(ies) to send again.")
    else:
        modeladmin.message_user(
            request, "Nothing to re-send: every chosen delivery was sent.", messages.WARNING
        )


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """The archive: what was generated and to whom it went; the content is never edited."""

    list_display = ["subject", "kind", "scope", "period_start", "generated_at", "delivered"]
    list_filter = ["kind", "service"]
    search_fields = ["subject"]
    date_hierarchy = "period_start"
    fields = [
        "subject",
        "kind",
        "service",
        "time_zone",
        "period_start",
        "period_end",
        "generated_at",
        "page",
        "text",
    ]
    readonly_fields = fields
    inlines = [DeliveryInline]
    actions = ["resend_failed", "resend_all"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Report]:
        return (
            super()
            .get_queryset(request)
            .select_related("service")
            .with_delivery_counts()
            .defer("content", "html", "text")
            .order_by("-period_start", "-id")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Scope", ordering="service__name")
    def scope(self, obj: Report) -> str:
        return obj.service.name if obj.service_id else "All services"

    @admin.display(description="Delivered")
    def delivered(self, obj: Report) -> str:
        text = f"{obj.sent_count}/{obj.recipient_count} sent"
        if obj.failed_count:
            return format_html(
                '{} · <strong style="color:#ba2121">{} failed</strong>', text, obj.failed_count
            )
        return text

    @admin.display(description="Web page")
    def page(self, obj: Report) -> str:
        url = reverse("reports:detail", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, url)

    def _may_send(self, request: HttpRequest) -> bool:
        return request.user.has_perm(SEND_PERM)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not self._may_send(request):
            actions.pop("resend_failed", None)
            actions.pop("resend_all", None)
        return actions

    @admin.action(description="Re-send failed and waiting deliveries")
    def resend_failed(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        deliveries = ReportDelivery.objects.filter(report__in=queryset)
        _resend(self, request, deliveries, include_sent=False)

    @admin.action(description="Send again to every recipient")
    def resend_all(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        deliveries = ReportDelivery.objects.filter(report__in=queryset)
        _resend(self, request, deliveries, include_sent=True)


@admin.register(ReportDelivery)
class ReportDeliveryAdmin(admin.ModelAdmin):
    """Every report sent (or waiting) to every address; failed ones can be sent again."""

    list_display = [
        "address",
        "report",
        "status",
        "attempts",
        "sent_at",
        "next_attempt_at",
        "short_error",
    ]
    list_filter = ["status"]
    search_fields = ["address", "report__subject"]
    list_select_related = ["report"]
    readonly_fields = [
        "report",
        "subscription",
        "address",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "next_attempt_at",
        "sent_at",
    ]
    fields = readonly_fields
    actions = ["resend"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReportDelivery]:
        # The list shows the report's subject only: leave its content in the database.
        return (
            super().get_queryset(request).defer("report__content", "report__html", "report__text")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Last error")
    def short_error(self, obj: ReportDelivery) -> str:
        return obj.last_error[:120]

    @admin.action(description="Re-send", permissions=["change"])
    def resend(self, request: HttpRequest, queryset: QuerySet[ReportDelivery]) -> None:
        _resend(self, request, queryset, include_sent=True)

"""Where plan rules ask on Slack, and the Slack calls made (read-only, with "Send again")."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.outbox import engine as outbox

from .models import SignOffChannel, SlackInteraction, SlackMessage


@admin.register(SignOffChannel)
class SignOffChannelAdmin(admin.ModelAdmin):
    list_display = ["rule", "channel", "direct"]
    list_select_related = ["rule__plan", "rule__stage_template"]
    raw_id_fields = ["rule"]


@admin.register(SlackMessage)
class SlackMessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "release", "channel", "person", "status", "attempts"]
    list_filter = ["kind", "status"]
    actions = ["send_again"]

    # The record of what was sent is kept as it is, like the email outbox's.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("outbox.resend_message")

    @admin.action(description="Send again", permissions=["resend"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[SlackMessage]) -> None:
        ids = outbox.resend(queryset)
        self.message_user(request, f"{len(ids)} Slack call(s) queued again.")


@admin.register(SlackInteraction)
class SlackInteractionAdmin(admin.ModelAdmin):
    list_display = ["received_at", "slack_user", "user", "action", "outcome"]

    # Each row is what stops a replay of its request: never edited, never deleted here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

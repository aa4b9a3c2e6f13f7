from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import engine
from .choices import DeliveryStatus
from .models import Message


def resend_unsent(
    model_admin: admin.ModelAdmin, request: HttpRequest, rows: QuerySet, *, noun: str
) -> None:
    """The admin's "send again" for any outbox table: failed, stuck and skipped rows, never a
    sent one (a message that reached its person is not sent twice by a click on a list)."""
    sent = rows.filter(status=DeliveryStatus.SENT).count()
    queued = engine.resend(rows)
    if queued:
        model_admin.message_user(request, f"Queued {len(queued)} {noun} to send again.")
    if sent:
        model_admin.message_user(
            request,
            f"Left {sent} already sent: a sent message is never sent twice.",
            messages.WARNING,
        )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Every email waiting, sent, failed or skipped, with its attempts; failed ones re-sendable."""

    list_display = ["created_at", "kind", "to", "about", "status", "attempts", "short_error"]
    list_filter = ["status", "kind"]
    search_fields = ["to", "key", "about"]
    date_hierarchy = "created_at"
    actions = ["send_again"]
    readonly_fields = [
        "kind",
        "to",
        "about",
        "key",
        "args",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "next_attempt_at",
        "claimed_at",
        "sent_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the record of what was sent is not edited; send_again acts on it

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("outbox.resend_message")

    @admin.display(description="Last error")
    def short_error(self, obj: Message) -> str:
        return obj.last_error[:80]

    @admin.action(description="Send the selected messages again", permissions=["resend"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        resend_unsent(self, request, queryset, noun="message(s)")

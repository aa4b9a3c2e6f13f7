"""Where a sign-off rule asks on Slack, the Slack calls waiting to be made, and the answers."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.outbox.choices import DeliveryStatus
from apps.releases.models import Release, Stage
from apps.signoffs.models import SignOffRule

from .choices import SlackMessageKind


class SignOffChannel(models.Model):
    """Where a plan's sign-off rule asks on Slack: a channel, each person asked, or both.

    Kept beside the rule, not copied onto releases: where to ask is not a term of the gate, so
    changing the channel applies to the next request of every release.
    """

    rule = models.OneToOneField(SignOffRule, on_delete=models.CASCADE, related_name="slack")
    channel = models.CharField(
        max_length=80,
        blank=True,
        help_text="The channel's ID (C0123ABCD, from the channel's details in Slack); the bot "
        "must be a member. Empty: no channel post.",
    )
    direct = models.BooleanField(
        default=False,
        help_text="Also message each person asked, found on Slack by their email address.",
    )

    class Meta:
        verbose_name = "Slack channel for sign-offs"
        verbose_name_plural = "Slack channels for sign-offs"

    def __str__(self) -> str:
        where = [f"#{self.channel}"] if self.channel else []
        if self.direct:
            where.append("each person asked")
        return f"{self.rule}: {' and '.join(where) or 'nowhere'}"

    def clean(self) -> None:
        self.channel = self.channel.strip().lstrip("#")
        if not self.channel and not self.direct:
            raise ValidationError("Name a channel, or tick 'direct', or both.")


class SlackMessage(models.Model):
    """One Slack Web API call to make: an outbox row, sent and retried by apps/outbox.

    A post (a sign-off request) keeps the channel and timestamp Slack gave it, which later
    updates of the same message need; `key` makes writing the same post twice store it once.
    """

    kind = models.CharField(max_length=10, choices=SlackMessageKind.choices)
    key = models.CharField(max_length=250, unique=True)
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="slack_messages")
    stage = models.ForeignKey(Stage, null=True, blank=True, on_delete=models.SET_NULL)
    gate_key = models.CharField(max_length=120)
    channel = models.CharField(max_length=80, blank=True, help_text="Channel ID of a post.")
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="A direct post: the person asked, found on Slack by email.",
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies"
    )
    slack_user = models.CharField(max_length=40, blank=True, help_text="Who an ephemeral is for.")
    text = models.TextField(blank=True, help_text="An ephemeral reply's words.")
    # What Slack answered to the post: where it is and its timestamp (its id for chat.update).
    posted_channel = models.CharField(max_length=40, blank=True)
    ts = models.CharField(max_length=40, blank=True)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="slackmessage_due",
            ),
            models.Index(fields=["posted_channel", "ts"], name="slackmessage_posted"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for release {self.release_id} ({self.status})"


class SlackInteraction(models.Model):
    """One signed request from Slack, kept by its signature: the same request again (a replay
    within the timestamp's five minutes) finds its row and does nothing."""

    signature = models.CharField(max_length=100, unique=True)
    received_at = models.DateTimeField(default=timezone.now)
    slack_user = models.CharField(max_length=40, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.ForeignKey(
        SlackMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="answers"
    )
    action = models.CharField(max_length=40, blank=True)
    outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.slack_user} at {self.received_at:%Y-%m-%d %H:%M}"

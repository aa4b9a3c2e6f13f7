"""Every notification rolloutdesk sends about an incident, on any channel, as a row people see."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..choices import Channel, DeliveryStatus
from .incidents import Incident, IncidentEvent
from .oncall import Contact


def redact_url(url: str) -> str:
    """https://hooks.example.com/services/T0/B0/secret -> https://hooks.example.com/…"""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "(webhook)"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


class NotificationDelivery(models.Model):
    """One message to one target: a page by email, or a post to the service's webhook.

    The idempotency key names what the message is for (the incident, the level, the person, the
    repeat round; or the timeline entry a webhook post announces), so however many ticks or
    workers try, the same page exists once and is sent once.
    """

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(
        IncidentEvent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        help_text="The timeline entry this message tells of.",
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    level = models.PositiveSmallIntegerField(null=True, blank=True, help_text="L1, L2, ...")
    round = models.PositiveSmallIntegerField(default=0, help_text="0: first pass; 1: 1st repeat.")
    target = models.CharField(max_length=500, help_text="Email address or webhook URL.")
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(
        max_length=10,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
        db_index=True,
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When it may be tried (again); empty once sent or given up.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set while a worker sends it; a claim older than the lease is taken as abandoned.
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "notification deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="delivery_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.shown_target} ({self.get_status_display()})"

    @property
    def shown_target(self) -> str:
        """The target as people and timelines may see it: a webhook URL's path is its secret
        (Slack and its kind authenticate by it), so only the scheme and host are shown."""
        if self.channel != Channel.WEBHOOK:
            return self.target
        return redact_url(self.target)

    @property
    def gave_up(self) -> bool:
        return self.status == DeliveryStatus.FAILED and self.next_attempt_at is None

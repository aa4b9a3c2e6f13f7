from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .choices import DeliveryStatus


class Message(models.Model):
    """One email to one address, built from its kind's templates when it is sent.

    `key` names what the message is for (the timeline entry, the sign-off request, the person
    and reminder), so a change that is retried, or two workers at once, write it once; a retry
    of the send never reaches the person twice. `args` holds the ids its kind needs to build the
    email at send time; `subject` is filled in when it was built, for the admin.
    """

    kind = models.CharField(max_length=60, db_index=True)
    key = models.CharField(max_length=250, unique=True)
    to = models.CharField(max_length=320, help_text="The address it goes to.")
    args = models.JSONField(default=dict, blank=True)
    about = models.CharField(
        max_length=100, blank=True, db_index=True, help_text='What it tells of: "release 12".'
    )
    subject = models.CharField(max_length=300, blank=True)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When it may be tried (again); empty once sent, skipped or given up.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set while a worker sends it; a claim older than the lease is taken as abandoned.
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="message_due",
            )
        ]
        permissions = [("resend_message", "Can send outgoing messages again")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to} ({self.get_status_display()})"

"""Who gets which summary when, every report generated, and each recipient's delivery."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from apps.releases.models import Service

from . import schedule
from .choices import DeliveryStatus, Frequency, Weekday

SCHEDULE_FIELDS = ("frequency", "weekday", "hour", "time_zone")


class ReportSubscription(models.Model):
    """A person or an address that receives the daily or weekly summary of one service or all."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="report_subscriptions",
        help_text="A user (their email address is used), or leave empty and give an address.",
    )
    email = models.EmailField(blank=True, help_text="A plain address, e.g. a mailing list.")
    frequency = models.CharField(max_length=10, choices=Frequency.choices, default=Frequency.WEEKLY)
    service = models.ForeignKey(
        Service,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="report_subscriptions",
        help_text="Empty: every service.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[schedule.validate_time_zone],
        help_text="The report arrives at this zone's wall-clock hour; days and weeks are its own.",
    )
    weekday = models.PositiveSmallIntegerField(
        choices=Weekday.choices, default=Weekday.MONDAY, help_text="Weekly reports: the day."
    )
    hour = models.PositiveSmallIntegerField(
        default=9, validators=[MaxValueValidator(23)], help_text="Local hour it is sent (0–23)."
    )
    active = models.BooleanField(default=True)
    # The claim: the task moves it forward with a conditional UPDATE before it sends anything.
    next_due_at = models.DateTimeField(null=True, blank=True, db_index=True, editable=False)
    last_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["frequency", "service", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(email=""))
                | (Q(user__isnull=True) & ~Q(email="")),
                name="reportsubscription_user_or_email",
                violation_error_message="Give either a user or an email address, not both.",
            ),
        ]

    def __str__(self) -> str:
        scope = self.service.name if self.service_id else "all services"
        return f"{self.get_frequency_display()} report on {scope} to {self.address}"

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> ReportSubscription:
        instance = super().from_db(db, field_names, values)
        instance._loaded_schedule = instance.schedule_key()
        return instance

    def schedule_key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name, None) for name in SCHEDULE_FIELDS)

    @property
    def address(self) -> str:
        if self.user_id is not None:
            return self.user.email
        return self.email

    def clean(self) -> None:
        if self.user_id is None and not self.email:
            raise ValidationError({"email": "Give a user or an email address."})
        if self.user_id is not None and self.email:
            raise ValidationError({"email": "Give either a user or an email address, not both."})
        if self.user_id is not None and not self.user.email:
            raise ValidationError({"user": f"{self.user} has no email address."})

    def due_after(self, after: datetime) -> datetime:
        """The first time this subscription is due after `after`."""
        return schedule.next_due(
            self.frequency,
            weekday=self.weekday,
            hour=self.hour,
            time_zone=self.time_zone,
            after=after,
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A new subscription, or a new day, hour or zone, starts from the next occurrence.
        if self.next_due_at is None or getattr(self, "_loaded_schedule", None) not in (
            None,
            self.schedule_key(),
        ):
            self.next_due_at = self.due_after(timezone.now())
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "next_due_at"}
        super().save(*args, **kwargs)
        self._loaded_schedule = self.schedule_key()


class ReportQuerySet(models.QuerySet):
    def with_delivery_counts(self) -> ReportQuerySet:
        """Recipients, sent and failed counts in the same query."""
        return self.annotate(
            recipient_count=Count("deliveries", distinct=True),
            sent_count=Count(
                "deliveries", filter=Q(deliveries__status=DeliveryStatus.SENT), distinct=True
            ),
            failed_count=Count(
                "deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED), distinct=True
            ),
        )


class Report(models.Model):
    """One generated summary of one period and scope: its figures, its rendering, its charts."""

    kind = models.CharField(max_length=10, choices=Frequency.choices)
    service = models.ForeignKey(
        Service,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reports",
        help_text="Empty: every service.",
    )
    time_zone = models.CharField(max_length=64, default="UTC")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    subject = models.CharField(max_length=255)
    content = models.JSONField(default=dict, help_text="Every figure of the report.")
    html = models.TextField(help_text="The HTML email as sent (charts referenced by cid:).")
    text = models.TextField(help_text="The plain-text email as sent.")
    generated_at = models.DateTimeField(default=timezone.now, db_index=True)
    preview = models.BooleanField(
        default=False,
        help_text="Generated before its period ended: a partial copy, never the one scheduled.",
    )

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            # One complete report per scope and period; previews are kept beside it, any number.
            models.UniqueConstraint(
                fields=["kind", "service", "time_zone", "period_start"],
                condition=Q(preview=False),
                name="report_once_per_scope_period",
            ),
            models.UniqueConstraint(
                fields=["kind", "time_zone", "period_start"],
                condition=Q(service__isnull=True, preview=False),
                name="report_once_per_period_all_services",
            ),
        ]

    def __str__(self) -> str:
        return self.subject

    def get_absolute_url(self) -> str:
        return reverse("reports:detail", args=[self.pk])

    @property
    def scope_name(self) -> str:
        return self.content.get("scope", {}).get("name", "")

    @property
    def period_label(self) -> str:
        return self.content.get("period", {}).get("label", "")


class ReportChart(models.Model):
    """A chart of a report as a PNG, drawn once when the report is generated."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="charts")
    name = models.SlugField(max_length=60)
    title = models.CharField(max_length=200)
    png = models.BinaryField()

    class Meta:
        ordering = ["report", "id"]
        constraints = [
            models.UniqueConstraint(fields=["report", "name"], name="reportchart_once"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.report_id})"

    @property
    def content_id(self) -> str:
        return f"{self.name}@rolloutdesk"


class DeliveryQuerySet(models.QuerySet):
    def unsent(self) -> DeliveryQuerySet:
        return self.exclude(status=DeliveryStatus.SENT)


class ReportDelivery(models.Model):
    """One report to one address: its state, attempts and last error; retried with backoff."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(
        ReportSubscription,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    address = models.EmailField()
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
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set while a worker sends it; a claim older than the lease is taken as abandoned.
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["report", "address"]
        verbose_name_plural = "report deliveries"
        constraints = [
            models.UniqueConstraint(fields=["report", "address"], name="reportdelivery_once"),
        ]

    def __str__(self) -> str:
        return f"{self.report} to {self.address} ({self.get_status_display()})"

    @property
    def gave_up(self) -> bool:
        return self.status == DeliveryStatus.FAILED and self.next_attempt_at is None

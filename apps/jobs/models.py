"""The last run of each periodic job, and the items that failed in them (one row per item)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class RunOutcome(models.TextChoices):
    """How a job's run ended."""

    OK = "ok", "ok"
    ITEMS_FAILED = "items_failed", "some items failed"
    CRASHED = "crashed", "crashed"


class JobRun(models.Model):
    """The latest run of one periodic job: when, how it ended, items done and failed."""

    job = models.CharField(max_length=100, unique=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    # The job's very first run here (kept by every later upsert): when the heartbeat began to
    # watch it, so an hourly job in a fresh install's first hour is not taken for a dead one.
    first_run_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=RunOutcome.choices)
    items_done = models.PositiveIntegerField(default=0)
    items_failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the run crashed, when it did.")

    class Meta:
        ordering = ["job"]

    def __str__(self) -> str:
        return f"{self.job} at {self.finished_at:%Y-%m-%d %H:%M:%S}: {self.get_outcome_display()}"


class JobItemFailure(models.Model):
    """One item that failed in a periodic job: the latest error, and how often it failed.

    Upserted by (job, item type, item id), so a row failing every minute stays one row whose
    count grows.
    """

    job = models.CharField(max_length=100)
    item_type = models.CharField(max_length=100, help_text="e.g. releases.release")
    item_id = models.CharField(max_length=64)
    item_label = models.CharField(max_length=255, blank=True)
    error_class = models.CharField(max_length=255)
    message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now, db_index=True)
    count = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-last_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "item_type", "item_id"], name="jobitemfailure_once_per_item"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job}: {self.item_type} {self.item_id}: {self.error_class}"

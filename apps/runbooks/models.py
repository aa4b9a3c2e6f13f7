"""The record of each runbook import: what was saved from which draft, for whom.

Kept so that re-importing a changed runbook for the same service can show what would change
(apps.runbooks.diff) before anything is saved, and so that an imported plan says where it came
from.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.incidents.models import EscalationPolicy
from apps.releases.models import RolloutPlan, Service


class RunbookImport(models.Model):
    """One saved import: the draft as saved (the documented JSON), and the objects it made."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="runbook_imports")
    source = models.CharField(max_length=255, help_text="The runbook's file name.")
    title = models.CharField(max_length=200)
    draft = models.JSONField(help_text="The draft as saved (import_runbook --json's shape).")
    plan = models.ForeignKey(
        RolloutPlan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    policy = models.ForeignKey(
        EscalationPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "runbook import"

    def __str__(self) -> str:
        return f"{self.source} for {self.service} ({self.created_at:%Y-%m-%d %H:%M})"

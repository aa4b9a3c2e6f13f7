"""Celery tasks of the metric checks: thin, they take ids and call the domain functions."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.jobs.runner import job

from .models import Sample

PURGE_BATCH = 10_000


def purge_old_samples(*, now: object = None, batch: int = PURGE_BATCH) -> int:
    """Delete samples older than the retention, a batch at a time; returns how many went."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.CHECKS_SAMPLE_RETENTION)
    deleted = 0
    while True:
        ids = list(Sample.objects.older_than(cutoff).values_list("id", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += Sample.objects.filter(id__in=ids).delete()[0]


@shared_task
def purge_samples() -> int:
    """Hourly: drop samples past the retention (CHECKS_SAMPLE_RETENTION_DAYS).

    Batches of ids, not items: no row can poison a DELETE, so the job only records its run.
    """
    with job("checks.purge_samples") as run:
        run.done = purge_old_samples()
    return run.done

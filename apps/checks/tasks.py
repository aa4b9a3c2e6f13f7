"""Celery tasks of the metric checks: thin, they take ids and call the domain functions."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.core import emails
from apps.jobs.runner import job

from .models import CheckNotification, Sample

PURGE_BATCH = 10_000


@shared_task(autoretry_for=(OSError,), retry_backoff=30, max_retries=8)
def notify_check(notification_id: int) -> int:
    """Email the service's notification list about a warning (or a notify-only failure)."""
    notification = (
        CheckNotification.objects.select_related(
            "release__service",
            "release__environment",
            "release__current_stage",
            "result__criterion__metric",
        )
        .filter(pk=notification_id, sent_at__isnull=True)
        .first()
    )
    if notification is None:
        return 0
    release = notification.release
    recipients = release.service.notification_recipients()
    sent = 0
    if recipients:
        result = notification.result
        criterion = result.criterion
        sent = emails.send(
            "metric-check",
            recipients,
            {
                "release": release,
                "result": result,
                "criterion": criterion,
                "value": criterion.metric.format(result.value) if criterion else result.value,
                "threshold": criterion.format_threshold(result.threshold) if criterion else "",
            },
        )
    CheckNotification.objects.filter(pk=notification.pk).update(sent_at=timezone.now())
    return sent


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

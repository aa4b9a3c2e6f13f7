"""Celery tasks: thin wrappers that take ids and call the domain functions."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core import emails
from apps.releases.models import Event

from . import gate
from .analysis import run_checks
from .ticks import auto_advance_due

logger = logging.getLogger(__name__)


@shared_task(autoretry_for=(OSError,), retry_backoff=30, max_retries=8)
def notify_event(event_id: int) -> int:
    """Email the service's notification list about one transition."""
    event = (
        Event.objects.select_related(
            "release__service", "release__environment", "release__current_stage", "stage"
        )
        .filter(pk=event_id)
        .first()
    )
    if event is None:
        return 0
    release = event.release
    recipients = release.service.notification_recipients()
    if not recipients:
        return 0
    verdict = gate.evaluate(release)
    return emails.send(
        "release-transition",
        recipients,
        {"event": event, "release": release, "verdict": verdict},
    )


@shared_task
def tick() -> dict[str, int]:
    """Every minute: auto-advance releases whose gate turned green."""
    # Metric checks first: a breach pauses or rolls back before auto-advance looks at the gate.
    checked = run_checks()
    logger.info(
        "Metric checks: %s release(s), %s result(s), paused %s, rolled back %s, notified %s",
        checked.releases,
        checked.results,
        checked.paused,
        checked.rolled_back,
        checked.notified,
    )
    report = auto_advance_due()
    return {
        "examined": report.examined,
        "advanced": len(report.advanced),
        "held": report.held,
        "skipped": report.skipped,
    }

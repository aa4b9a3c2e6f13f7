"""Celery tasks: thin wrappers that call the report services."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services

logger = logging.getLogger(__name__)


@shared_task
def send_due_reports() -> dict[str, int]:
    """Every 5 minutes: report to the subscriptions that are due (the outbox retries sends)."""
    run = services.send_due()
    return {
        "claimed": len(run.claimed),
        "raced": run.raced,
        "generated": run.reports_generated,
        "deliveries": run.deliveries,
    }

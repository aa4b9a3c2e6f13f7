"""Celery tasks: thin wrappers that call the report services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from . import services
from .choices import DeliveryStatus

logger = logging.getLogger(__name__)


@shared_task
def send_due_reports() -> dict[str, int]:
    """Every 5 minutes: report to the subscriptions that are due, and retry failed sends."""
    run = services.send_due()
    return {
        "claimed": len(run.claimed),
        "raced": run.raced,
        "generated": run.reports_generated,
        "deliveries": run.deliveries,
        "retried": run.retried,
    }


@shared_task
def send_delivery(delivery_id: int) -> str:
    """Send one report to one address; on failure, come back when its backoff is over."""
    delivery = services.deliver(delivery_id)
    if delivery is None:
        return "not due or taken"
    if delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is not None:
        wait = max((delivery.next_attempt_at - timezone.now()).total_seconds(), 1)
        try:
            send_delivery.apply_async((delivery_id,), countdown=wait)
        except Exception:  # the scheduled task retries it anyway
            logger.exception("Could not queue the retry of report delivery %s", delivery_id)
    return delivery.status

"""Celery tasks: thin wrappers that take ids and call the escalation and notification functions."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from apps.jobs.runner import job

from . import escalation, notify
from .choices import DeliveryStatus

logger = logging.getLogger(__name__)


@shared_task
def send_delivery(delivery_id: int) -> str:
    """Send one delivery; on failure, come back when its backoff is over."""
    delivery = notify.deliver(delivery_id)
    if delivery is None:
        return "not due or taken"
    if delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is not None:
        wait = max((delivery.next_attempt_at - timezone.now()).total_seconds(), 1)
        try:
            send_delivery.apply_async((delivery_id,), countdown=wait)
        except Exception:  # the every-minute sweep retries it anyway
            logger.exception("Could not queue the retry of delivery %s", delivery_id)
    return delivery.status


@shared_task
def escalate() -> dict[str, int]:
    """Every minute: page the escalation levels open incidents have reached."""
    report = escalation.escalate_due()
    return {
        "examined": report.examined,
        "escalated": len(report.escalated),
        "pages": report.pages,
        "raced": report.raced,
    }


@shared_task
def retry_deliveries() -> int:
    """Every minute: send again the deliveries whose backoff is over (and stranded ones).

    Each send is its own task; one that fails is recorded by the send job (notify.deliver).
    """
    with job("incidents.retry_deliveries") as run:
        due = notify.due_for_retry()
        notify.queue(due)
        run.done = len(due)
    return len(due)

"""Celery tasks: thin wrappers that take ids and call the escalation and notification functions."""

from __future__ import annotations

import logging

from celery import shared_task

from . import escalation

logger = logging.getLogger(__name__)


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

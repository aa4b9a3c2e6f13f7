"""Celery tasks: thin wrappers over the sign-off sweep (its emails go through the outbox)."""

from __future__ import annotations

import logging

from celery import shared_task

from . import asking

logger = logging.getLogger(__name__)


@shared_task
def sweep() -> dict[str, int]:
    """Every minute: ask for sign-offs on gates that wait only for them, and send reminders."""
    # The gate lives in rollouts; this task is an entry point like the API (see __init__).
    from apps.rollouts.gate_signoffs import request_signoffs_when_ready

    asked = request_signoffs_when_ready()
    reminded = asking.remind_due()
    return {"gates_asked": asked, "people_reminded": len(reminded)}

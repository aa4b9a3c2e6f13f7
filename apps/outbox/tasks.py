"""The outbox's beat entry point (the send task lives with the engine that queues it)."""

from __future__ import annotations

from celery import shared_task

from . import engine


@shared_task
def sweep() -> dict[str, int]:
    """Every minute: queue what is due in every outbox table (retries, strays, dead claims)."""
    return engine.sweep()

"""Celery tasks: thin wrappers that take ids and call the domain functions."""

from __future__ import annotations

import logging

from celery import shared_task

from .analysis import run_checks
from .ticks import auto_advance_due

logger = logging.getLogger(__name__)


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

"""Celery tasks: thin wrappers that take ids and call the domain functions."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.signoffs import asking

from .breach_response import run_checks
from .ticks import auto_advance_due, request_signoffs_when_ready
from .verdicts import refresh_due

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
    # What time alone changed (soaks ending, freezes, sign-offs lapsing): only the rows due.
    recomputed = refresh_due()
    report = auto_advance_due()
    return {
        "verdicts_recomputed": recomputed,
        "examined": report.examined,
        "advanced": len(report.advanced),
        "held": report.held,
        "skipped": report.skipped,
    }


@shared_task
def signoffs_sweep() -> dict[str, int]:
    """Every minute: ask for sign-offs on gates that wait only for them, and send reminders."""
    # Here, not in apps.signoffs: asking reads the gate, which sits above the sign-offs app.
    asked = request_signoffs_when_ready()
    reminded = asking.remind_due()
    return {"gates_asked": asked, "people_reminded": len(reminded)}

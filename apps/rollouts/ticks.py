"""The scheduled tick: what rolloutdesk does by itself every minute."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db.models import DateTimeField, ExpressionWrapper, F, Value
from django.utils import timezone

from apps.core.actors import Actor
from apps.jobs.runner import job
from apps.releases.models import Release

from . import gate, transitions

logger = logging.getLogger(__name__)


@dataclass
class TickReport:
    """What one tick looked at and did."""

    examined: int = 0
    advanced: list[int] = field(default_factory=list)
    held: int = 0
    skipped: int = 0


def auto_advance_due() -> TickReport:
    """Advance every running release whose stage auto-advances and whose gate is green.

    Safe to run twice at once: advance() locks the row and refuses when the release has moved
    since it was read, so two workers never advance the same release twice. Each release is one
    item of the job: one whose gate or advance fails is recorded and the others go on.
    """
    now = timezone.now()
    report = TickReport()
    actor = Actor.system("auto-advance")
    candidates = (
        Release.objects.in_progress()
        .filter(current_stage__auto_advance=True)
        # Cheap pre-filter in SQL: a stage still inside its soak cannot pass the gate.
        .filter(
            current_stage__entered_at__lte=ExpressionWrapper(
                Value(now) - F("current_stage__min_soak"), output_field=DateTimeField()
            )
        )
        .select_related("service", "current_stage")
        .order_by("pk")
    )
    with job("rollouts.auto_advance") as run:
        for release in candidates.iterator(chunk_size=500):
            report.examined += 1
            # No savepoint of its own: the gate only reads, and advance() writes in one
            # transaction; a savepoint per release would cost every tick two queries each.
            with run.item(release, atomic=False):
                if not gate.evaluate(release, now=now).can_advance:
                    report.held += 1
                    continue
                try:
                    transitions.advance(
                        release, actor=actor, reason="Gate green; stage auto-advances."
                    )
                except transitions.TransitionError as exc:
                    report.skipped += 1
                    logger.info("Auto-advance of release %s skipped: %s", release.pk, exc.message)
                else:
                    report.advanced.append(release.pk)
    return report

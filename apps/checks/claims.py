"""Claims that make scheduled work happen once when two ticks run at once: the tick's check
run of each release (one per slot), and the one notification of a breach episode."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.releases.models import Release

from .choices import RunTrigger
from .models import CheckNotification, CheckResult, CheckRun


def tick_seconds() -> int:
    return settings.CHECKS_TICK_SECONDS


def slot_of(now: datetime) -> datetime:
    period = tick_seconds()
    epoch = int(now.timestamp()) // period * period
    return datetime.fromtimestamp(epoch, tz=now.tzinfo or timezone.get_current_timezone())


def claim_runs(
    releases: Sequence[Release], now: datetime, trigger: str = RunTrigger.TICK
) -> dict[int, CheckRun]:
    """Create this tick's run for each release unless another tick has claimed it already.

    The unique (release, slot) constraint makes the claim: rows another worker inserted first are
    skipped by the insert, and we read back only the rows carrying our own claim id.
    """
    if not releases:
        return {}
    claim = uuid.uuid4()
    slot = slot_of(now) if trigger == RunTrigger.TICK else None
    runs = [
        CheckRun(
            release=r,
            stage_id=r.current_stage_id,
            trigger=trigger,
            slot=slot,
            claim=claim,
            started_at=now,
        )
        for r in releases
    ]
    if slot is None:
        CheckRun.objects.bulk_create(runs)
        return {run.release_id: run for run in runs}
    CheckRun.objects.bulk_create(runs, ignore_conflicts=True)
    return {run.release_id: run for run in CheckRun.objects.filter(slot=slot, claim=claim)}


def claim_notification(result: CheckResult) -> CheckNotification | None:
    """Claim the one notification of this breach episode; None when another tick has it."""
    try:
        with transaction.atomic():
            return CheckNotification.objects.create(
                release_id=result.release_id,
                criterion_id=result.criterion_id,
                episode=result.episode,
                verdict=result.verdict,
                result=result,
            )
    except IntegrityError:
        return None

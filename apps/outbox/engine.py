"""The one delivery mechanism: claim a due row, send it, record how it went, retry with backoff.

Every outbox table registers here with the function that sends one of its rows (and, if it
keeps a timeline, what to record when a row is sent or fails). Sending is the same for all:

- claim: a conditional UPDATE takes a due, unclaimed row (or one whose claim is older than the
  lease: its worker died) and counts the attempt; exactly one caller wins;
- send, outside any transaction; a failure is recorded on the row, which waits out its backoff
  (30 s, 1 min, 2 min ... at most 30 min) until its kind's attempts are spent;
- a row whose bookkeeping raises past its own error handling is recorded as a failed item of
  the send job and pushed to its next attempt, never left claimed for ever;
- the sweep, every minute, queues what is due: failed rows whose backoff is over, rows nobody
  picked up after commit (broker down), and rows whose worker died mid-send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.error import HTTPError

from celery import Task, shared_task
from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.jobs.runner import Run, job

from .choices import DeliveryStatus

logger = logging.getLogger(__name__)

ERROR_LENGTH = 2000
# The job whose items are the sends: failures that escape a row's own error handling.
SEND_JOB = "outbox.send"
SWEEP_JOB = "outbox.sweep"
SWEEP_LIMIT = 500


class Skip(Exception):  # noqa: N818 (it is not an error: the message is no longer needed)
    """Raised by a sender when there is nothing to send any more; the row is marked skipped."""


@dataclass(frozen=True)
class Box:
    """One outbox table and how one of its rows is sent."""

    model: type[models.Model]
    send: Callable[[Any], None]
    related: tuple[str, ...] = ()
    # Inside the transaction that marks the row sent (or failed): a timeline entry, say.
    on_sent: Callable[[Any], None] | None = None
    on_failed: Callable[[Any, str, datetime | None], None] | None = None
    max_attempts: Callable[[], int] | None = None

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    def attempts_allowed(self) -> int:
        if self.max_attempts is not None:
            return self.max_attempts()
        return settings.OUTBOX_MAX_ATTEMPTS


BOXES: dict[str, Box] = {}


def register(model: type[models.Model], send: Callable[[Any], None], **options: Any) -> Box:
    """Make `model` an outbox table whose rows `send(row)` sends (raising when it failed)."""
    box = Box(model=model, send=send, **options)
    BOXES[box.label] = box
    return box


def box_for(model: type[models.Model] | str) -> Box:
    label = model if isinstance(model, str) else model._meta.label_lower
    try:
        return BOXES[label]
    except KeyError:
        raise LookupError(f"{label} is not a registered outbox table.") from None


def lease() -> timedelta:
    """How long a claim holds: a worker that died mid-send is taken over after this."""
    return timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)


def pending_grace() -> timedelta:
    """A pending row this old was not picked up after commit (broker down): the sweep sends it."""
    return timedelta(seconds=settings.OUTBOX_PENDING_GRACE_SECONDS)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min, ... at most 30 min between attempts."""
    first = timedelta(seconds=settings.OUTBOX_RETRY_FIRST_SECONDS)
    longest = timedelta(seconds=settings.OUTBOX_RETRY_LONGEST_SECONDS)
    return min(first * 2 ** max(attempts - 1, 0), longest)


def due(now: datetime) -> Q:
    return Q(
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED], next_attempt_at__lte=now
    ) & (Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - lease()))


# --- handing rows to Celery -----------------------------------------------------------------


def queue(model: type[models.Model] | str, ids: Sequence[int], *, countdown: float = 0) -> None:
    """Hand rows to Celery; a broker that is down leaves them to the sweep."""
    label = box_for(model).label
    for pk in ids:
        send.enqueue(label, pk, countdown=countdown)


def queue_after_commit(model: type[models.Model] | str, ids: Sequence[int]) -> None:
    """Queue rows once the transaction that wrote them commits (a send never sees a rollback)."""
    ids = list(ids)
    if ids:
        transaction.on_commit(lambda: queue(model, ids))


# --- sending --------------------------------------------------------------------------------


def deliver(model: type[models.Model] | str, pk: int, *, now: datetime | None = None) -> Any:
    """Send one row if it is due and nobody else is sending it; None when not ours to send."""
    box = box_for(model)
    now = now or timezone.now()
    claimed = box.model.objects.filter(due(now), pk=pk).update(
        claimed_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    # No savepoint: the send talks to the outside world, never inside a transaction.
    with Run(job=SEND_JOB).item(
        kind=box.label,
        pk=pk,
        atomic=False,
        on_failure=lambda exc: _push_back(box, pk, exc, now),
    ):
        return _claimed_send(box, pk, now)
    return box.model.objects.filter(pk=pk).first()


def _claimed_send(box: Box, pk: int, claimed_at: datetime) -> Any:
    row = box.model.objects.select_related(*box.related).get(pk=pk)
    try:
        box.send(row)
    except Skip as skip:
        return _finish(box, row, claimed_at, DeliveryStatus.SKIPPED, note=str(skip))
    except OSError as exc:  # the server is down or refused: the row waits for a retry
        return _failed(box, row, exc, claimed_at)
    except Exception as exc:
        # Not the outside world: a bug or bad data. The row records it and waits too, and the
        # send job records it with its traceback for whoever reads the jobs' failures.
        _failed(box, row, exc, claimed_at)
        raise
    return _finish(box, row, claimed_at, DeliveryStatus.SENT)


def _finish(box: Box, row: Any, claimed_at: datetime, status: str, note: str = "") -> Any:
    with transaction.atomic():
        done = box.model.objects.filter(pk=row.pk, claimed_at=claimed_at).update(
            status=status,
            sent_at=timezone.now() if status == DeliveryStatus.SENT else None,
            next_attempt_at=None,
            claimed_at=None,
            last_error=note[:ERROR_LENGTH],
        )
        row.refresh_from_db()
        if done and status == DeliveryStatus.SENT and box.on_sent is not None:
            box.on_sent(row)
    return row


def _failed(box: Box, row: Any, exc: Exception, claimed_at: datetime) -> Any:
    error = error_text(exc)
    with transaction.atomic():
        retry_at = _mark_failed(box, row.pk, row.attempts, error, claimed_at)
        row.refresh_from_db()
        if box.on_failed is not None:
            box.on_failed(row, error, retry_at)
    logger.warning("Sending %s %s failed: %s", box.label, row.pk, error)
    return row


def _mark_failed(
    box: Box, pk: int, attempts: int, error: str, claimed_at: datetime
) -> datetime | None:
    """Give the claim back as failed, due again after its backoff (None: no attempts left)."""
    retry_at = None
    if attempts < box.attempts_allowed():
        retry_at = timezone.now() + backoff(attempts)
    box.model.objects.filter(pk=pk, claimed_at=claimed_at).update(
        status=DeliveryStatus.FAILED, last_error=error, next_attempt_at=retry_at, claimed_at=None
    )
    return retry_at


def _push_back(box: Box, pk: int, exc: Exception, claimed_at: datetime) -> None:
    """The poison-row guard: give the claim back, record the error, wait for the next attempt."""
    attempts = box.model.objects.filter(pk=pk).values_list("attempts", flat=True).first()
    if attempts is not None:
        # No on_failed hook: it may describe the row, which may be what raised.
        _mark_failed(box, pk, attempts, error_text(exc), claimed_at)


def error_text(exc: Exception) -> str:
    if isinstance(exc, HTTPError):
        try:
            body = exc.read(300).decode("utf-8", "replace").strip()
        except Exception:  # the body is a courtesy; the status says enough
            body = ""
        return f"HTTP {exc.code} {exc.reason}" + (f": {body}" if body else "")
    return f"{type(exc).__name__}: {exc}"[:ERROR_LENGTH]


def retry_wait(row: Any) -> float | None:
    """Seconds until a failed row's next attempt (None: sent, skipped or given up)."""
    if row is None or row.status != DeliveryStatus.FAILED or row.next_attempt_at is None:
        return None
    return max((row.next_attempt_at - timezone.now()).total_seconds(), 1)


# --- the sweep and re-sends -----------------------------------------------------------------


def due_for_retry(
    model: type[models.Model] | str, now: datetime | None = None, limit: int = SWEEP_LIMIT
) -> list[int]:
    """Rows whose next attempt is due, pending ones nobody picked up after commit, and rows a
    dead worker had claimed."""
    box = box_for(model)
    now = now or timezone.now()
    waiting = (
        Q(status=DeliveryStatus.FAILED)
        | Q(next_attempt_at__lte=now - pending_grace())
        | Q(claimed_at__isnull=False)
    )
    return list(
        box.model.objects.filter(due(now))
        .filter(waiting)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Queue every outbox table's due rows; returns how many per table."""
    queued: dict[str, int] = {}
    with job(SWEEP_JOB) as run:
        for label in sorted(BOXES):
            with run.item(kind="outbox.box", pk=label, atomic=False):
                ids = due_for_retry(label, now)
                queue(label, ids)
                queued[label] = len(ids)
    return queued


def resend(rows: models.QuerySet, *, include_sent: bool = False) -> list[int]:
    """Send rows again now (sent ones only when asked): a person's extra attempt.

    Attempts keep counting (the row's history stays true), so a re-send that fails too waits
    for the next person rather than starting a new round of automatic retries. A row a worker
    is sending right now keeps its claim: the queued send then skips it.
    """
    chosen = rows if include_sent else rows.exclude(status=DeliveryStatus.SENT)
    ids = list(chosen.values_list("pk", flat=True))
    rows.model.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
    )
    queue_after_commit(rows.model, ids)
    return ids


# --- the Celery task ------------------------------------------------------------------------
# Here, not in tasks.py: queue() hands rows to it and it hands failed rows back to itself, so
# the two belong together (apart, the engine and the task module imported each other). Its
# name on the wire stays the one it had there: queued messages, routing and worker logs use it.

# A broker that does not answer at once is not waited for: the row is safe in the database
# and the sweep sends it. Two quick retries ride out a reconnect.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class OutboxTask(Task):
    """A task whose work is a row already committed: queueing it may fail without harm."""

    def enqueue(self, *args: Any, countdown: float = 0) -> bool:
        """Queue the task; False (logged) when the broker is down, for the sweep to make up."""
        try:
            self.apply_async(
                args, countdown=countdown or None, retry=True, retry_policy=PUBLISH_RETRY
            )
        except Exception as exc:  # the change is committed; its row waits for the sweep
            # One line, no traceback: an outage would otherwise log one per message.
            logger.warning(
                "Could not queue %s%r (%s); the outbox sweep will send it", self.name, args, exc
            )
            return False
        return True


@shared_task(base=OutboxTask, name="apps.outbox.tasks.send")
def send(label: str, pk: int) -> str:
    """Send one outbox row; on failure, come back when its backoff is over."""
    row = deliver(label, pk)
    if row is None:
        return "not due or taken"
    wait = retry_wait(row)
    if wait is not None:
        send.enqueue(label, pk, countdown=wait)
    return row.status

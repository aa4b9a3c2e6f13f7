"""Run a periodic job item by item: each item in its own savepoint, each failure recorded.

    with job("incidents.escalate") as run:
        for incident in candidates:
            with run.item(incident):
                escalate(incident, now)

A failing item's writes roll back with its savepoint; the error is logged with its traceback,
upserted as the item's JobItemFailure (outside the failed savepoint), and the loop goes on.
`on_failure` pushes the bad row's next attempt ahead (healthchecks' sendalerts guard), so a row
that fails every time neither blocks the queue nor is retried in a tight loop. The run itself is
recorded in the job's JobRun row: when, how it ended, items done and failed.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import IntegrityError, transaction
from django.db.models import F, Model
from django.utils import timezone

from .models import JobItemFailure, JobRun, RunOutcome

logger = logging.getLogger(__name__)

TRACEBACK_LENGTH = 20_000
MESSAGE_LENGTH = 2_000


@dataclass
class Run:
    """One run of a periodic job: counts its items and guards each one."""

    job: str
    started_at: datetime = field(default_factory=timezone.now)
    done: int = 0
    failed: int = 0
    # Items already counted: one guarded in several phases (the checks tick evaluates, decides
    # and acts per release) counts once, as done or, if any phase failed, as failed.
    _counted: dict[tuple[str, object], bool] = field(default_factory=dict, repr=False)

    @contextmanager
    def item(
        self,
        obj: Model | None = None,
        *,
        kind: str = "",
        pk: object = None,
        label: str = "",
        atomic: bool = True,
        on_failure: Callable[[Exception], Any] | None = None,
    ) -> Iterator[None]:
        """Run one item; an exception is recorded against it and swallowed.

        `obj` names the item (or `kind` and `pk` for something that is not a model instance).
        `atomic=False` skips the savepoint where the item's work already writes in one
        transaction of its own and a savepoint per item would cost queries on every run, or
        where it talks to the outside world (an email is never sent inside a transaction).
        `on_failure(exc)` runs after the failure is recorded: push the row's next attempt ahead.
        """
        kind = kind or (obj._meta.label_lower if obj is not None else "")
        pk = pk if pk is not None else getattr(obj, "pk", None)
        try:
            if atomic:
                with transaction.atomic():
                    yield
            else:
                yield
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: the whole run stops, not this item
        except Exception as exc:
            self._count((kind, pk), ok=False)
            logger.exception("%s: %s %s failed; going on with the others", self.job, kind, pk)
            if not record_failure(self.job, exc, kind=kind, pk=pk, obj=obj, label=label):
                raise  # the database cannot even take the record: stop the run
            if on_failure is not None:
                try:
                    on_failure(exc)
                except Exception:
                    logger.exception("%s: could not push %s %s back", self.job, kind, pk)
        else:
            self._count((kind, pk), ok=True)

    def _count(self, key: tuple[str, object], *, ok: bool) -> None:
        """Count an item once however many phases guard it; failed if any of them failed."""
        before = self._counted.get(key) if key[1] is not None else None
        if before is None:
            if key[1] is not None:
                self._counted[key] = ok
            self.done += ok
            self.failed += not ok
        elif before and not ok:
            self._counted[key] = False
            self.done -= 1
            self.failed += 1

    @property
    def outcome(self) -> str:
        return RunOutcome.ITEMS_FAILED if self.failed else RunOutcome.OK


def _label_of(obj: Model | None) -> str:
    if obj is None:
        return ""
    try:
        return str(obj)[:255]
    except Exception:  # a broken row may not even print; its type and id still name it
        return ""


def record_failure(
    job_name: str,
    exc: BaseException,
    *,
    kind: str,
    pk: object,
    obj: Model | None = None,
    label: str = "",
) -> bool:
    """Upsert the item's failure row (count + 1, latest error); false when it cannot be stored."""
    now = timezone.now()
    fields = {
        "error_class": f"{type(exc).__module__}.{type(exc).__qualname__}"[:255],
        "message": str(exc)[:MESSAGE_LENGTH],
        "traceback": "".join(traceback.format_exception(exc))[-TRACEBACK_LENGTH:],
        "item_label": (label or _label_of(obj))[:255],
        "last_at": now,
    }
    key = {"job": job_name, "item_type": kind, "item_id": str(pk if pk is not None else "")}
    try:
        with transaction.atomic():
            if JobItemFailure.objects.filter(**key).update(count=F("count") + 1, **fields):
                return True
            try:
                with transaction.atomic():
                    JobItemFailure.objects.create(first_at=now, **key, **fields)
            except IntegrityError:  # another worker recorded it first
                JobItemFailure.objects.filter(**key).update(count=F("count") + 1, **fields)
    except Exception:
        logger.exception("%s: could not record the failure of %s %s", job_name, kind, pk)
        return False
    return True


def _finish(run: Run, outcome: str, error: str = "") -> None:
    """Store the run in the job's JobRun row: one upsert, so every run costs the same queries."""
    row = JobRun(
        job=run.job,
        started_at=run.started_at,
        # Written on the row's first insert only: not among update_fields below.
        first_run_at=run.started_at,
        finished_at=timezone.now(),
        outcome=outcome,
        items_done=run.done,
        items_failed=run.failed,
        error=error,
    )
    try:
        with transaction.atomic():
            JobRun.objects.bulk_create(
                [row],
                update_conflicts=True,
                unique_fields=["job"],
                update_fields=[
                    "started_at",
                    "finished_at",
                    "outcome",
                    "items_done",
                    "items_failed",
                    "error",
                ],
            )
    except Exception:  # the record of a run must never be what fails it
        logger.exception("Could not record the run of %s", run.job)


@contextmanager
def job(name: str) -> Iterator[Run]:
    """One run of the periodic job `name`; recorded in its JobRun row however it ends."""
    run = Run(job=name)
    try:
        yield run
    except BaseException as exc:
        _finish(
            run, RunOutcome.CRASHED, "".join(traceback.format_exception(exc))[-TRACEBACK_LENGTH:]
        )
        raise
    _finish(run, run.outcome)

"""The outbox's Celery tasks and the task base every after-commit hand-off uses."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from . import engine

logger = logging.getLogger(__name__)

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


@shared_task(base=OutboxTask)
def send(label: str, pk: int) -> str:
    """Send one outbox row; on failure, come back when its backoff is over."""
    row = engine.deliver(label, pk)
    if row is None:
        return "not due or taken"
    wait = engine.retry_wait(row)
    if wait is not None:
        send.enqueue(label, pk, countdown=wait)
    return row.status


@shared_task
def sweep() -> dict[str, int]:
    """Every minute: queue what is due in every outbox table (retries, strays, dead claims)."""
    return engine.sweep()

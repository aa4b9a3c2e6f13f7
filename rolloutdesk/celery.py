"""The Celery application; configuration comes from Django settings (CELERY_*)."""

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rolloutdesk.settings")

app = Celery("rolloutdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class FirstOfEachTask:
    """A logging filter that lets through the first "received" and "succeeded" line of each task
    name and drops the routine repeats (the every-minute tick would print two lines a minute).
    Warnings, errors and a task's own log lines always pass."""

    ROUTINE = ("celery.app.trace", "celery.worker.strategy")

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in self.ROUTINE or record.levelno > logging.INFO:
            return True
        name = str((record.args or {}).get("name", "")) if isinstance(record.args, dict) else ""
        key = (record.name, name or record.getMessage().split("[", 1)[0])
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@after_setup_logger.connect
def _quiet_routine_tasks(logger: logging.Logger, **kwargs: object) -> None:
    # Only where asked (make run sets it): production keeps every line for its log store.
    if os.environ.get("CELERY_QUIET_ROUTINE_TASKS", "").lower() in ("1", "true", "yes"):
        for handler in logger.handlers:
            handler.addFilter(FirstOfEachTask())

"""The heartbeat: which periodic jobs have stopped running, read from their JobRun rows.

Each beat entry of CELERY_BEAT_SCHEDULE runs one or more jobs (the names their `job(...)` runs
record). A job is *stale* when its last run finished more than two of its entry's intervals ago,
when it never ran, or when its last run crashed: beat or the workers are down, the task fails
before its job starts, or it crashes every time. The health endpoint and the dashboard show the
stale jobs; neither decides anything from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.core.durations import format_duration

from .models import JobRun, RunOutcome

# The jobs each beat entry runs, by the name their runs are recorded under. A beat entry added
# to CELERY_BEAT_SCHEDULE must be listed here (a test checks it), or its job has no heartbeat.
BEAT_JOBS: dict[str, tuple[str, ...]] = {
    "rollouts-tick": ("rollouts.checks", "rollouts.verdicts", "rollouts.auto_advance"),
    "checks-purge-samples": ("checks.purge_samples",),
    "signoffs-sweep": ("signoffs.request", "signoffs.remind"),
    "incidents-escalate": ("incidents.escalate",),
    "outbox-sweep": ("outbox.sweep",),
    "reports-send-due": ("reports.send_due",),
}

# Missing this many runs in a row makes a job stale: one late run is a busy worker, two is not.
MISSED_RUNS = 2


@dataclass(frozen=True)
class StaleJob:
    """A periodic job that has not run for two of its intervals, never ran, or last crashed."""

    job: str
    entry: str  # the beat entry that runs it
    every: timedelta
    last_run: datetime | None  # when its last run finished
    outcome: str  # of its last run; "" when it never ran
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "entry": self.entry,
            "every_seconds": int(self.every.total_seconds()),
            "last_run": self.last_run.isoformat() if self.last_run else None,
            "outcome": self.outcome or None,
            "reason": self.reason,
        }


def interval_of(schedule: Any) -> timedelta | None:
    """A beat entry's interval: seconds, a timedelta or celery's `schedule`; None for crontabs."""
    if isinstance(schedule, int | float):
        return timedelta(seconds=schedule)
    if isinstance(schedule, timedelta):
        return schedule
    run_every = getattr(schedule, "run_every", None)
    return run_every if isinstance(run_every, timedelta) else None


def expected_jobs() -> list[tuple[str, str, timedelta]]:
    """(job, beat entry, interval) of every periodic job with an interval, in schedule order."""
    found = []
    for entry, spec in settings.CELERY_BEAT_SCHEDULE.items():
        every = interval_of(spec.get("schedule"))
        if every is None:
            continue  # a crontab has no fixed interval to miss two of
        for name in BEAT_JOBS.get(entry, ()):
            found.append((name, entry, every))
    return found


def stale_jobs(now: datetime | None = None) -> list[StaleJob]:
    """The periodic jobs that look stopped at `now`: one query."""
    now = now or timezone.now()
    expected = expected_jobs()
    runs = {run.job: run for run in JobRun.objects.filter(job__in=[j for j, _, _ in expected])}
    # When the jobs began to run here (the first run of any of them): an hourly job that has
    # not run in a fresh install's first twenty minutes is not missing, it is not due yet.
    began = min((run.first_run_at for run in runs.values() if run.first_run_at), default=None)
    stale = []
    for name, entry, every in expected:
        run = runs.get(name)
        if run is None:
            if began is not None and now - began <= MISSED_RUNS * every:
                continue
            reason = "has never run"
        elif run.outcome == RunOutcome.CRASHED:
            error = run.error.strip().splitlines()[-1] if run.error.strip() else "no error kept"
            reason = f"its last run crashed: {error}"
        elif now - run.finished_at > MISSED_RUNS * every:
            since, period = format_duration(now - run.finished_at), format_duration(every)
            reason = f"has not run for {since} (runs every {period})"
        else:
            continue
        stale.append(
            StaleJob(
                job=name,
                entry=entry,
                every=every,
                last_run=run.finished_at if run else None,
                outcome=run.outcome if run else "",
                reason=reason,
            )
        )
    return stale


def summary(now: datetime | None = None) -> dict[str, Any]:
    """The health endpoint's `jobs`: "ok" or "stale", and the stale jobs."""
    stale = stale_jobs(now)
    return {"status": "stale" if stale else "ok", "stale": [job.as_dict() for job in stale]}

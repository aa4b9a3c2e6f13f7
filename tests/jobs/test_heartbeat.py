"""The heartbeat: /api/v1/health/ and the dashboard name a periodic job that has not run for two of
its intervals, never ran, or last crashed, and when it last ran; health still answers 200."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from rest_framework.test import APIClient

from apps.jobs.heartbeat import BEAT_JOBS, expected_jobs
from apps.jobs.models import JobRun
from apps.jobs.runner import job
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def every_job_runs() -> None:
    for name, _, _ in expected_jobs():
        with job(name):
            pass


def health() -> dict:
    response = APIClient().get("/api/v1/health/")
    assert response.status_code == 200  # the web process is fine, whatever the jobs do
    return response.json()


def stale_names() -> list[str]:
    return [j["job"] for j in health()["jobs"]["stale"]]


def test_every_beat_entry_records_the_jobs_its_heartbeat_watches():
    assert set(BEAT_JOBS) == set(settings.CELERY_BEAT_SCHEDULE)
    for entry, spec in settings.CELERY_BEAT_SCHEDULE.items():
        module, name = spec["task"].rsplit(".", 1)
        getattr(importlib.import_module(module), name)()  # the beat task itself, run inline
        recorded = set(JobRun.objects.values_list("job", flat=True))
        assert set(BEAT_JOBS[entry]) <= recorded, entry


def test_a_job_not_run_for_two_intervals_is_named_with_its_last_run():
    with time_machine.travel(T0, tick=False) as clock:
        every_job_runs()
        assert health()["jobs"] == {"status": "ok", "stale": []}

        clock.move_to(T0 + timedelta(minutes=2))  # two minutes: late, not yet stale
        assert stale_names() == []

        clock.move_to(T0 + timedelta(minutes=2, seconds=1))
        body = health()
    # The every-minute jobs stopped; the hourly purge and the 5-minute reports are not late.
    assert body["status"] == "ok" and body["jobs"]["status"] == "stale"
    escalate = next(j for j in body["jobs"]["stale"] if j["job"] == "incidents.escalate")
    assert escalate == {
        "job": "incidents.escalate",
        "entry": "incidents-escalate",
        "every_seconds": 60,
        "last_run": "2026-11-02T09:00:00+00:00",
        "outcome": "ok",
        "reason": "has not run for 2m (runs every 1m)",
    }
    names = [j["job"] for j in body["jobs"]["stale"]]
    assert "checks.purge_samples" not in names and "reports.send_due" not in names
    assert "rollouts.checks" in names and "outbox.sweep" in names


def test_a_job_whose_last_run_crashed_is_stale_at_once():
    with time_machine.travel(T0, tick=False):
        every_job_runs()
        with pytest.raises(RuntimeError), job("checks.purge_samples"):
            raise RuntimeError("canceling statement due to statement timeout")
        stale = health()["jobs"]["stale"]
    assert [(j["job"], j["outcome"]) for j in stale] == [("checks.purge_samples", "crashed")]
    assert stale[0]["reason"] == (
        "its last run crashed: RuntimeError: canceling statement due to statement timeout"
    )


def test_a_job_that_never_ran_is_stale():
    with time_machine.travel(T0, tick=False):
        every_job_runs()
        JobRun.objects.filter(job="signoffs.remind").delete()
        # The jobs began to run here 3 minutes ago (the hourly purge's run): the every-minute
        # reminder should have run twice since.
        JobRun.objects.filter(job="checks.purge_samples").update(
            first_run_at=T0 - timedelta(minutes=3)
        )
        stale = health()["jobs"]["stale"]
    assert stale == [
        {
            "job": "signoffs.remind",
            "entry": "signoffs-sweep",
            "every_seconds": 60,
            "last_run": None,
            "outcome": None,
            "reason": "has never run",
        }
    ]


def test_a_job_not_yet_due_in_a_fresh_install_is_not_stale():
    # Beat began 20 minutes ago: every-minute jobs ran, the hourly purge is not due yet.
    with time_machine.travel(T0 - timedelta(minutes=20), tick=False) as clock:
        every_job_runs()
        JobRun.objects.filter(job="checks.purge_samples").delete()
        clock.move_to(T0)
        every_job_runs()
        JobRun.objects.filter(job="checks.purge_samples").delete()
        assert health()["jobs"] == {"status": "ok", "stale": []}
        # Two hours on, it is missing.
        clock.move_to(T0 + timedelta(hours=2))
        every_job_runs()
        JobRun.objects.filter(job="checks.purge_samples").delete()
        stale = health()["jobs"]["stale"]
    assert [(j["job"], j["reason"]) for j in stale] == [("checks.purge_samples", "has never run")]


def test_the_dashboard_names_the_stopped_job_and_when_it_last_ran(victor):
    with time_machine.travel(T0, tick=False) as clock:
        every_job_runs()
        calm = client_for(victor).get("/").content.decode()
        clock.move_to(T0 + timedelta(minutes=10))
        with job("checks.purge_samples"), job("reports.send_due"):
            pass  # these still run: only the every-minute entries stopped
        html = client_for(victor).get("/").content.decode()
    assert "Periodic jobs not running" not in calm
    assert "Periodic jobs not running" in html
    assert (
        '<strong>incidents.escalate</strong> <span class="muted">(incidents-escalate)</span> '
        "has not run for 10m (runs every 1m); last ran 2026-11-02 09:00 UTC."
    ) in html
    assert "checks.purge_samples</strong>" not in html

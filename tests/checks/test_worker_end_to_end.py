"""End to end: CI pushes breaching samples; a real Celery worker with beat, on Redis, rolls back.

The worker (`celery -A rolloutdesk worker -B`) runs as a subprocess against its own Redis database
and the very test database (committed rows: transactional_db), the way
tests/rollouts/test_celery_worker.py starts its workers. Its beat reads the schedule from the
database (django-celery-beat); the test marks the tick as last run minutes ago, so beat sends it
at once instead of a minute after starting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlparse, urlunparse

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.checks.models import CheckResult
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Release
from apps.rollouts import transitions
from tests.checks.conftest import criterion
from tests.conftest import need_service
from tests.factories import PlanFactory, ServiceFactory, make_release

pytestmark = [pytest.mark.services, pytest.mark.real_worker]

# Redis databases claimed one per running test; the rollouts worker tests count down from 15.
CLAIMABLE_DBS = range(2, 8)
CLAIM_KEY = "rolloutdesk:test-checks-worker-claim"


def _tail(log: Path, lines: int = 80) -> str:
    text = log.read_text(errors="replace") if log.exists() else "(no worker log)"
    return "--- worker log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    import redis

    parsed = urlparse(redis_url)
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for db in CLAIMABLE_DBS:
        url = urlunparse(parsed._replace(path=f"/{db}"))
        client = redis.Redis.from_url(url)
        try:
            claimed = client.set(CLAIM_KEY, token, nx=True, ex=300)
        except redis.ConnectionError as exc:
            need_service(f"Redis is not reachable at {redis_url}: {exc}")
        if not claimed:
            client.close()
            continue
        client.pipeline(transaction=True).flushdb().set(CLAIM_KEY, token, ex=300).execute()
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
        return
    pytest.fail(f"No free Redis database among {list(CLAIMABLE_DBS)}.")


def _database_url() -> str:
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(str(conf['NAME'])).resolve()}"
    auth = quote(conf["USER"] or "", safe="")
    if conf["PASSWORD"]:
        auth += ":" + quote(conf["PASSWORD"], safe="")
    host, port = conf["HOST"] or "localhost", conf["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{quote(conf['NAME'], safe='')}"


@pytest.fixture
def worker_with_beat(
    transactional_db: None, broker: str, tmp_path: Path
) -> Iterator[Callable[[], Path]]:
    """A function that starts `celery worker -B` on the claimed Redis and the test database."""
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker,
        "EMAIL_URL": f"filemail:///{tmp_path / 'outbox'}",
        "DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_WRITE_URL", "CELERY_BROKER_READ_URL"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "celery", "-A", "rolloutdesk", "worker", "-B",
        "--pool=solo", "--loglevel=INFO", "--without-mingle", "--without-gossip",
        "--without-heartbeat", f"--hostname=checks-{uuid.uuid4().hex[:8]}@%h",
    ]  # fmt: skip
    processes: list[subprocess.Popen] = []

    def start() -> Path:
        out = log.open("wb")
        processes.append(
            subprocess.Popen(
                command, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        )
        out.close()
        return log

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown of the main process
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_breaching_samples_pushed_by_ci_roll_back_within_one_tick(
    worker_with_beat, production, error_rate
) -> None:
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    plan = PlanFactory(slug="watched", stages=[("canary", 10, timedelta(hours=24), False)])
    criterion(
        plan,
        error_rate,
        warning_threshold=0.02,
        critical_threshold=0.05,
        for_window=timedelta(minutes=5),
        on_critical="rollback",
    )
    release = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    transitions.start(release, actor=Actor.system("tests"))
    _, key = ApiToken.issue("ci", [service])
    ci = APIClient()
    ci.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    now = timezone.now()
    samples = [
        {
            "release": release.pk,
            "metric": "error_rate",
            "value": 0.08,
            "count": 500,
            "at": (now - timedelta(seconds=15 * n)).isoformat(),
        }
        for n in range(1, 25)  # the last six minutes, every 15 seconds
    ]
    pushed = ci.post("/api/v1/samples/", json.dumps(samples), content_type="application/json")
    assert pushed.status_code == 201, pushed.content
    # The beat schedule as the worker's beat will install it, last run two minutes ago: due now.
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    PeriodicTask.objects.update_or_create(
        name="rollouts-tick",
        defaults={
            "task": "apps.rollouts.tasks.tick",
            "interval": every_minute,
            "last_run_at": now - timedelta(minutes=2),
        },
    )

    log = worker_with_beat()
    deadline = time.monotonic() + 60
    while Release.objects.get(pk=release.pk).status != ReleaseStatus.ROLLED_BACK:
        if time.monotonic() > deadline:
            pytest.fail("The release was not rolled back within a minute.\n" + _tail(log))
        time.sleep(0.3)

    release.refresh_from_db()
    event = release.events.get(verb=EventVerb.ROLLED_BACK)
    assert event.actor_name == "system:metric-checks"
    assert "error_rate > 5 %" in event.reason
    assert "measured 8 %" in event.reason
    assert CheckResult.objects.get(release=release).verdict == "fail"
    traffic = ci.get(f"/api/v1/releases/{release.pk}/traffic/")
    assert traffic.json() == {"percentage": 0, "status": "rolled_back", "stage": "canary"}

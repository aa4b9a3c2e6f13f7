"""A real Celery worker process, on Redis and the test database, runs rolloutdesk's tasks.

Each test starts `celery -A rolloutdesk worker` as a subprocess, pointed at a Redis database of
its own and at the very database this test writes to (committed rows, hence transactional_db),
queues work the way the product does, and waits (bounded) for the effect in the database or in
the worker's outbox. Without Redis the tests skip locally and fail under REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote, urlparse, urlunparse

import pytest
from django.conf import settings
from django.db import connection

from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Event, Release
from apps.rollouts import transitions
from apps.rollouts.tasks import tick
from rolloutdesk.celery import app as celery_app
from tests.conftest import need_service
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release

pytestmark = [pytest.mark.services, pytest.mark.real_worker]

# Redis databases these tests may claim, one per running test, so that two test runs on one
# machine (a developer's and CI's) never consume each other's tasks.
CLAIMABLE_DBS = range(15, 7, -1)
CLAIM_KEY = "rolloutdesk:test-worker-claim"
READY_TIMEOUT = 30.0
EFFECT_TIMEOUT = 30.0


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, log: Path) -> object:
    """Poll until predicate() is truthy; fail with the worker's log if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:.0f}s waiting for {what}.\n{_tail(log)}")
        time.sleep(0.2)


def _tail(log: Path, lines: int = 60) -> str:
    text = log.read_text(errors="replace") if log.exists() else "(no worker log)"
    return "--- worker log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def worker_broker(redis_url: str) -> Iterator[str]:
    """A Redis database claimed for this test alone, emptied before and after use."""
    import redis

    parsed = urlparse(redis_url)
    base_db = int(parsed.path.lstrip("/") or 0)
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for db in CLAIMABLE_DBS:
        if db == base_db:
            continue
        url = urlunparse(parsed._replace(path=f"/{db}"))
        client = redis.Redis.from_url(url)
        try:
            claimed = client.set(CLAIM_KEY, token, nx=True, ex=300)
        except redis.ResponseError:  # the server has fewer databases than that
            client.close()
            continue
        except redis.ConnectionError as exc:
            need_service(f"Redis is not reachable at {redis_url}: {exc}")
        if not claimed:
            client.close()
            continue
        # Atomically drop what a crashed run may have left, keeping our claim.
        client.pipeline(transaction=True).flushdb().set(CLAIM_KEY, token, ex=300).execute()
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
        return
    pytest.fail(f"No free Redis database among {list(CLAIMABLE_DBS)} on {redis_url}.")


def _database_url() -> str:
    """The URL of the database this test process is using right now (the test database)."""
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(conf["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            pytest.fail("A worker process cannot share an in-memory SQLite test database.")
        return f"sqlite:///{Path(name).resolve()}"
    if connection.vendor == "postgresql":
        auth = quote(conf["USER"] or "", safe="")
        if conf["PASSWORD"]:
            auth += ":" + quote(conf["PASSWORD"], safe="")
        host = conf["HOST"] or "localhost"
        port = conf["PORT"] or 5432
        return f"postgres://{auth}@{host}:{port}/{quote(conf['NAME'], safe='')}"
    pytest.fail(f"No worker test support for the {connection.vendor} database.")


def _drop_broker_connections() -> None:
    # Celery caches its connection and producer pools: without dropping them, tasks would keep
    # going to whichever broker this process used first. (Not closed: kombu's registry may hand
    # the same pool out again for the same URL.)
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def app_sending_to(broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make this process's Celery app publish to broker_url, for real (not eagerly)."""
    keys = ("broker_url", "broker_transport_options", "task_always_eager")
    saved = {key: celery_app.conf[key] for key in keys}
    # Celery prefers these environment variables over its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", broker_url)
    monkeypatch.delenv("CELERY_BROKER_WRITE_URL", raising=False)
    celery_app.conf.update(
        broker_url=broker_url, broker_transport_options={}, task_always_eager=False
    )
    _drop_broker_connections()
    try:
        yield
    finally:
        celery_app.conf.update(saved)
        _drop_broker_connections()


@dataclass
class Worker:
    """A running worker process: its log and its outbox folder."""

    process: subprocess.Popen
    log: Path
    outbox: Path

    def emails(self) -> list[EmailMessage]:
        """Every email the worker sent (Django's file backend writes them to the outbox)."""
        messages = []
        for path in sorted(self.outbox.glob("*.log")):
            for chunk in path.read_text().split("-" * 79):
                if chunk.strip():
                    messages.append(
                        email.message_from_string(chunk.lstrip("\n"), policy=email.policy.default)
                    )
        return messages


@pytest.fixture
def worker(
    transactional_db: None,
    worker_broker: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Worker]:
    """A `celery -A rolloutdesk worker` process on the claimed Redis and the test database."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": worker_broker,
        "EMAIL_URL": f"filemail:///{outbox}",  # four slashes: an absolute path
        "DEBUG": "true",  # the worker is no pytest process: no SECRET_KEY needed
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_WRITE_URL", "CELERY_BROKER_READ_URL"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "rolloutdesk",
        "worker",
        "--pool=solo",
        "--loglevel=INFO",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        f"--hostname=test-{uuid.uuid4().hex[:8]}@%h",
    ]
    with log.open("wb") as out, app_sending_to(worker_broker, monkeypatch):
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        running = Worker(process=process, log=log, outbox=outbox)
        try:
            wait_for(
                lambda: process.poll() is not None or b" ready." in log.read_bytes(),
                timeout=READY_TIMEOUT,
                what="the Celery worker to be ready",
                log=log,
            )
            if process.poll() is not None:
                pytest.fail(f"The worker exited with {process.returncode}.\n{_tail(log)}")
            yield running
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Warm shutdown (SIGTERM to the worker's main process), then kill if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def test_worker_runs_the_tick_and_auto_advances_a_green_release(worker: Worker) -> None:
    system = Actor.system("tests")
    service = ServiceFactory()
    # One running release per service and environment: each of the three has its own.
    environments = [
        EnvironmentFactory(slug=f"region-{n}", name=f"Region {n}", is_production=False)
        for n in range(3)
    ]
    manual = make_release(
        service=service,
        environment=environments[0],
        plan=PlanFactory(
            stages=[("canary", 5, timedelta(0), False), ("full", 100, timedelta(0), False)]
        ),
    )
    soaking = make_release(
        service=service,
        environment=environments[1],
        plan=PlanFactory(
            stages=[("canary", 5, timedelta(hours=24), True), ("full", 100, timedelta(0), False)]
        ),
    )
    # Created last so the tick, which goes in id order, has judged the others when it moves this.
    green = make_release(
        service=service,
        environment=environments[2],
        plan=PlanFactory(
            stages=[("canary", 10, timedelta(0), True), ("half", 50, timedelta(hours=1), True)]
        ),
    )
    for release in (manual, soaking, green):
        transitions.start(release, actor=system)

    tick.apply_async()

    def green_moved() -> bool:
        green.refresh_from_db()
        return green.current_stage.name != "canary"

    wait_for(
        green_moved, timeout=EFFECT_TIMEOUT, what="the tick to advance the release", log=worker.log
    )
    assert green.status == ReleaseStatus.IN_PROGRESS
    assert green.current_stage.name == "half"
    assert green.traffic_percentage == 50
    advanced = Event.objects.get(release=green, verb=EventVerb.ADVANCED)
    assert advanced.actor_name == "system:auto-advance"
    assert advanced.data["from_stage"] == "canary"
    # Not auto-advancing, and still soaking: the tick left both where they were.
    for release in (manual, soaking):
        release.refresh_from_db()
        assert release.current_stage.name == "canary"
        assert not Event.objects.filter(release=release, verb=EventVerb.ADVANCED).exists()


def test_worker_emails_the_service_list_about_a_transition_after_commit(worker: Worker) -> None:
    service = ServiceFactory(
        name="AI Orchestra",
        slug="ai-orchestra",
        notification_emails="oncall@example.com, pm@example.com",
    )
    release = make_release(service=service, version="2.4.0")

    transitions.start(release, actor=Actor.system("tests"))  # one message per address, queued

    # The task's success line comes after the email file is complete: read it only then.
    wait_for(
        lambda: (
            len(re.findall(rb"outbox\.tasks\.send\[[^]]+\] succeeded", worker.log.read_bytes()))
            >= 2
        ),
        timeout=EFFECT_TIMEOUT,
        what="the worker to send both outbox messages",
        log=worker.log,
    )
    messages = worker.emails()
    assert sorted(m["To"] for m in messages) == ["oncall@example.com", "pm@example.com"], _tail(
        worker.log
    )
    message = messages[0]
    subject = " ".join(str(message["Subject"]).split())  # unfolded
    assert subject == "[AI Orchestra] 2.4.0 → Production: started (canary)"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "2.4.0" in text
    assert message.get_body(preferencelist=("html",)) is not None
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.IN_PROGRESS

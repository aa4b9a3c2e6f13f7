"""Fixtures of the fault and scale-out tests: a Redis of their own, Celery processes on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from apps.incidents.models import Contact, EscalationLevel, EscalationPolicy, IncidentRouting
from apps.releases.models import Service
from rolloutdesk.celery import app as celery_app
from tests.checks.conftest import error_rate  # noqa: F401 (the breach tests' metric fixture)
from tests.faults.services import Celery, RedisServer, database_url, temp_folder


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server started for this test on a free port (never the shared one on 6379)."""
    folder = temp_folder("rd-fault-redis-")
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _drop_broker_connections() -> None:
    # Celery caches connection and producer pools: drop them so the next send uses the new URL.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def app_sending_to(broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's Celery app publishes to broker_url, for real (not eagerly)."""
    keys = ("broker_url", "broker_transport_options", "task_always_eager")
    saved = {key: celery_app.conf[key] for key in keys}
    monkeypatch.setenv("CELERY_BROKER_URL", broker_url)  # Celery prefers it to its config
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


@pytest.fixture
def celery(
    transactional_db: None, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Celery]:
    """Start workers and beat on the test's own Redis and the test database (committed rows)."""
    folder = temp_folder("rd-fault-celery-")
    manager = Celery(broker_url=own_redis.url, database_url=database_url(), folder=folder)
    with app_sending_to(own_redis.url, monkeypatch):
        try:
            yield manager
        finally:
            manager.stop_all()
            shutil.rmtree(folder, ignore_errors=True)


def page_on_call(service: Service, *, webhook_url: str = "") -> Contact:
    """Route the service's incidents to a one-level policy paging one on-call person at once."""
    person = Contact.objects.create(name="Ada", email="ada@example.com")
    policy = EscalationPolicy.objects.create(name=f"{service.slug} on-call")
    level = EscalationLevel.objects.create(policy=policy, position=1, after_minutes=0)
    level.contacts.set([person])
    IncidentRouting.objects.create(service=service, policy=policy, webhook_url=webhook_url)
    return person

"""Redis (the Celery broker) stops: the pages and the API keep answering, health says the broker
is down, nothing committed is lost; when Redis returns, a worker and beat pick the work up again.

The test starts a redis-server of its own on a free port (the machine's shared one is never
touched), stops it, and starts it again on the same port.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.incidents.choices import DeliveryStatus
from apps.incidents.models import NotificationDelivery
from apps.outbox.models import Message
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Event, Release
from apps.rollouts import transitions
from tests.checks.conftest import criterion, push
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release
from tests.faults.conftest import page_on_call
from tests.faults.services import wait_for

pytestmark = [pytest.mark.services, pytest.mark.real_worker]


def subjects(messages) -> list[str]:
    return [" ".join(str(m["Subject"]).split()) for m in messages]


def test_with_redis_down_the_app_answers_and_the_work_resumes_when_it_returns(
    celery, own_redis, error_rate, production, client, victor
) -> None:
    system = Actor.system("tests")
    service = ServiceFactory(
        name="AI Orchestra", slug="ai-orchestra", notification_emails="oncall@example.com"
    )
    page_on_call(service)
    plan = PlanFactory(slug="watched", stages=[("canary", 10, timedelta(hours=24), False)])
    criterion(
        plan,
        error_rate,
        critical_threshold=0.05,
        for_window=timedelta(minutes=5),
        on_critical="rollback",
    )
    breaching = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    # In another region: one release of a service runs in an environment at a time.
    region = EnvironmentFactory(name="Production EU", slug="production-eu")
    steady = make_release(service=service, environment=region, plan=plan, version="2.5.0")
    for release in (breaching, steady):
        transitions.start(release, actor=system)
    push(breaching, error_rate, [0.08] * 6, end=timezone.now(), count=500)
    push(steady, error_rate, [0.001] * 6, end=timezone.now(), count=500)
    _, key = ApiToken.issue("ci", [service])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    own_redis.stop()

    started = time.monotonic()
    health = client.get("/api/v1/health/")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["database"], body["broker"]) == ("ok", "ok", "down")
    assert time.monotonic() - started < 10, "the health check must not hang on a dead broker"

    traffic = api.get(f"/api/v1/releases/{breaching.pk}/traffic/")
    assert traffic.status_code == 200
    assert traffic.json()["percentage"] == 10
    # A transition commits although its notification cannot be queued: the email waits as a
    # row of the outbox, written in the transition's transaction.
    paused = api.post(f"/api/v1/releases/{steady.pk}/pause/", {"reason": "hold"}, format="json")
    assert paused.status_code == 200, paused.content
    assert paused.json()["status"] == ReleaseStatus.PAUSED
    paused_email = Message.objects.get(
        kind="release-transition",
        args__event=Event.objects.get(release=steady, verb=EventVerb.PAUSED).pk,
    )
    assert paused_email.status == DeliveryStatus.PENDING
    # An incident opened meanwhile is stored; its page waits as a row.
    opened = api.post(
        "/api/v1/incidents/",
        {"service": "ai-orchestra", "title": "Checkout errors", "severity": "sev2"},
        format="json",
    )
    assert opened.status_code == 201, opened.content
    page = NotificationDelivery.objects.get(incident_id=opened.json()["id"])
    assert page.status == DeliveryStatus.PENDING
    client.force_login(victor)
    assert client.get("/").status_code == 200
    assert client.get(f"/releases/{breaching.pk}/").status_code == 200
    # No broker, no tick: nothing has looked at the breach yet.
    assert Release.objects.get(pk=breaching.pk).status == ReleaseStatus.IN_PROGRESS

    # The outage lasted a few minutes: the stranded page is past the sweep's grace period.
    NotificationDelivery.objects.filter(pk=page.pk).update(
        created_at=F("created_at") - timedelta(minutes=3),
        next_attempt_at=F("next_attempt_at") - timedelta(minutes=3),
    )
    own_redis.start()
    worker = celery.worker()
    celery.beat()

    wait_for(
        lambda: Release.objects.get(pk=breaching.pk).status == ReleaseStatus.ROLLED_BACK,
        timeout=60,
        what="beat's tick to run the checks and roll the breaching release back",
        log=celery.logs(),
    )
    wait_for(
        lambda: NotificationDelivery.objects.get(pk=page.pk).status == DeliveryStatus.SENT,
        timeout=60,
        what="the sweep to send the page stranded by the outage",
        log=celery.logs(),
    )
    # Notifications flow again: a transition now is emailed to the service's list.
    resumed = api.post(f"/api/v1/releases/{steady.pk}/resume/", {"reason": "ok"}, format="json")
    assert resumed.status_code == 200
    wait_for(
        lambda: any("resumed" in s for s in subjects(celery.emails())),
        timeout=30,
        what="the resume email",
        log=celery.logs(),
    )
    sent = subjects(celery.emails())
    # One page per incident: the one opened during the outage, and the breach's.
    assert len([s for s in sent if "Checkout errors" in s and "L1 page" in s]) == 1, sent
    assert len([s for s in sent if "critical breach" in s and "L1 page" in s]) == 1, sent
    assert len([s for s in sent if "rolled back" in s]) == 1, sent
    # The transition email the outage held back arrives, once.
    assert len([s for s in sent if "paused" in s]) == 1, sent
    assert Message.objects.get(pk=paused_email.pk).status == DeliveryStatus.SENT
    assert Event.objects.filter(release=breaching, verb=EventVerb.ROLLED_BACK).count() == 1
    assert worker.process.poll() is None

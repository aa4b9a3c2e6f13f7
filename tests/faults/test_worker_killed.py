"""A worker is SIGKILLed in the middle of a tick: the next tick finishes the work, and no action
is lost or done twice.

Tasks are acknowledged late (a killed worker's tick is not lost with it, and is never half
acknowledged), and every action is idempotent: a rollback refuses a release that already moved,
a breach updates the incident its episode opened, a page has a unique idempotency key, and the
sweep sends pages whose queueing died with the worker.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from apps.core.actors import Actor
from apps.incidents.choices import DeliveryStatus
from apps.incidents.models import Incident, NotificationDelivery
from apps.outbox.models import Message
from apps.outbox.tasks import sweep
from apps.releases.choices import EventVerb
from apps.releases.models import Event
from apps.rollouts import transitions
from apps.rollouts.tasks import tick
from tests.checks.conftest import criterion, push
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release
from tests.faults.conftest import page_on_call
from tests.faults.fast_settings import FAST_SECONDS
from tests.faults.services import wait_for

pytestmark = [pytest.mark.services, pytest.mark.real_worker]

RELEASES = 60


def rolled_back() -> int:
    return Event.objects.filter(verb=EventVerb.ROLLED_BACK).count()


def test_a_worker_killed_mid_tick_loses_and_doubles_nothing(celery, error_rate, production) -> None:
    system = Actor.system("tests")
    service = ServiceFactory(
        name="AI Orchestra", slug="ai-orchestra", notification_emails="oncall@example.com"
    )
    page_on_call(service)
    plan = PlanFactory(slug="watched", stages=[("canary", 10, timedelta(hours=24), False)])
    criterion(plan, error_rate, critical_threshold=0.05, on_critical="rollback")
    releases = []
    for n in range(RELEASES):
        # Each in a region of its own: one release of a service runs in an environment at a time.
        region = EnvironmentFactory(name=f"Region {n}", slug=f"region-{n}")
        release = make_release(service=service, environment=region, plan=plan, version=f"3.0.{n}")
        transitions.start(release, actor=system)
        releases.append(release)
    # The samples end now, once the releases are made: on a busy machine making 60 takes long
    # enough that samples stamped before it fall out of the criterion's one-minute window.
    now = timezone.now()
    for release in releases:
        push(release, error_rate, [0.09] * 3, end=now, count=400)

    first = celery.worker()
    tick.apply_async()
    wait_for(lambda: rolled_back() > 0, timeout=60, what="the tick's first rollback",
             log=celery.logs())  # fmt: skip
    first.kill()
    done_before = rolled_back()
    assert 0 < done_before < RELEASES, "the worker was not killed in the middle of the tick"

    # The next ticks, on another worker, finish what the killed one left. They are sent the way
    # beat sends them, one per tick slot of a few seconds, with the delivery sweep (beat itself
    # is in test_scale_out.py).
    celery.worker()

    def done() -> bool:
        unsent = NotificationDelivery.objects.exclude(status=DeliveryStatus.SENT).exists()
        emails = Message.objects.exclude(status=DeliveryStatus.SENT).exists()
        return rolled_back() == RELEASES and not unsent and not emails

    deadline = time.monotonic() + 120
    while not done() and time.monotonic() < deadline:
        tick.apply_async(expires=9)
        sweep.apply_async(expires=9)
        time.sleep(FAST_SECONDS + 0.5)
    wait_for(done, timeout=5, what="the next ticks to roll every release back and page once",
             log=celery.logs())  # fmt: skip
    tick.apply_async(expires=9)  # one more tick: it must find nothing left to do
    time.sleep(FAST_SECONDS + 0.5)

    per_release = Event.objects.filter(verb=EventVerb.ROLLED_BACK).values("release_id")
    assert {row["n"] for row in per_release.annotate(n=Count("id"))} == {1}
    incidents = Incident.objects.filter(service=service)
    assert incidents.count() == RELEASES
    assert set(incidents.values_list("release_id", flat=True)) == {r.pk for r in releases}
    assert NotificationDelivery.objects.count() == RELEASES
    pages = [m for m in celery.emails() if m["To"] == "ada@example.com"]
    assert len(pages) == RELEASES, celery.logs()
    assert len({" ".join(str(m["Subject"]).split()) for m in pages}) == RELEASES
    # Transition emails are outbox rows written with the rollback: none is lost with the
    # worker, and none reaches the list twice (a re-send after a kill keeps its Message-ID).
    rollbacks = [m for m in celery.emails() if "rolled back" in str(m["Subject"])]
    assert len({str(m["Message-ID"]) for m in rollbacks}) == RELEASES, celery.logs()
    assert len({str(m["Subject"]) for m in rollbacks}) == RELEASES

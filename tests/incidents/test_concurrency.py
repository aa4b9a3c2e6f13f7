"""Two workers at once on PostgreSQL: nobody is paged twice, one incident per breach."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import connection

from apps.core.actors import Actor
from apps.incidents import escalation, lifecycle
from apps.incidents.choices import Channel, IncidentVerb, Severity
from apps.incidents.models import Incident, NotificationDelivery
from tests.factories import make_release

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime.fromisoformat("2026-03-10 10:00:00+00:00")
SYSTEM = Actor.system("tests")


def twice(func: Callable[[], Any]) -> list[Any]:
    """Run `func` in two threads (two workers), released at the same instant."""
    barrier = threading.Barrier(2)

    def worker() -> Any:
        try:
            barrier.wait(timeout=10)
            return func()
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(worker), pool.submit(worker)]
        return [f.result(timeout=60) for f in futures]


def pages() -> Counter:
    """How many email pages each (incident, level, person) got."""
    return Counter(
        NotificationDelivery.objects.filter(channel=Channel.EMAIL).values_list(
            "incident_id", "level", "contact__name"
        )
    )


def test_two_escalation_ticks_at_once_page_each_person_once(postgres, service, routing):
    with time_machine.travel(T0, tick=False) as clock:
        incidents = [
            lifecycle.open_incident(
                service=service, title=f"Alert {n}", severity=Severity.SEV2, actor=SYSTEM
            )
            for n in range(8)
        ]
        mail.outbox.clear()
        clock.move_to(T0 + timedelta(minutes=31))  # L2 and L3 are due for all of them

        reports = twice(escalation.escalate_due)

    assert sum(len(r.escalated) for r in reports) == len(incidents)
    assert sum(r.pages for r in reports) == len(incidents) * 4  # Pia, Sam, Emma, Xavier
    counts = pages()
    assert set(counts.values()) == {1}
    assert len(counts) == len(incidents) * 5  # Ada at L1, then four more each
    assert Counter(m.to[0] for m in mail.outbox) == {
        f"{name}@example.com": len(incidents) for name in ("pia", "sam", "emma", "xavier")
    }
    for incident in incidents:
        levels = incident.events.filter(verb=IncidentVerb.ESCALATED).values_list(
            "data__level", flat=True
        )
        assert sorted(levels) == [1, 2, 3]


def test_two_workers_that_read_the_same_incident_page_its_level_once(postgres, service, routing):
    with time_machine.travel(T0, tick=False) as clock:
        incident = lifecycle.open_incident(
            service=service, title="Checkout down", severity=Severity.SEV2, actor=SYSTEM
        )
        clock.move_to(T0 + timedelta(minutes=15))
        # Both workers hold the same (now stale) view of the incident before either pages.
        seen = [Incident.objects.select_related("policy").get(pk=incident.pk) for _ in range(2)]
        results = iter(seen)
        lock = threading.Lock()

        def tick() -> int | None:
            with lock:
                mine = next(results)
            return escalation.escalate(mine, T0 + timedelta(minutes=15))

        outcomes = twice(tick)

    assert sorted(outcomes, key=str) == [2, None]  # one paged two people; the other lost
    assert pages() == Counter(
        {(incident.pk, 1, "Ada"): 1, (incident.pk, 2, "Pia"): 1, (incident.pk, 2, "Sam"): 1}
    )


def test_two_ticks_seeing_the_same_breach_open_one_incident(postgres, service, production):
    release = make_release(service=service, environment=production)

    def breach() -> tuple[Incident, bool]:
        return lifecycle.open_or_update_for_breach(
            release,
            criterion_id=7,
            criterion_label="error_rate > 5 %",
            detail="Metric check failed: error_rate measured 9 %.",
            episode=-123,
        )

    results = twice(breach)

    assert sorted(opened for _, opened in results) == [False, True]
    assert Incident.objects.count() == 1
    incident = Incident.objects.get()
    assert list(incident.events.values_list("verb", flat=True)) == [IncidentVerb.OPENED]

"""The due-report task run by two workers at once (PostgreSQL, two threads, two connections):
each subscription is claimed once, its report stored once, and each recipient emailed once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail
from django.db import connection

from apps.outbox import engine as outbox
from apps.reports import services
from apps.reports.models import Report, ReportDelivery, ReportSubscription
from apps.reports.tasks import send_due_reports
from tests.factories import ServiceFactory

pytestmark = pytest.mark.django_db(transaction=True)

DUE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def twice_at_once(func):
    """Run func in two threads released together; each closes its own connection."""
    barrier = threading.Barrier(2)

    def call(_):
        try:
            barrier.wait(timeout=10)
            return func()
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(call, [0, 1]))


@pytest.mark.parametrize("rounds", range(3))
def test_two_runs_at_once_send_one_email_per_recipient(postgres, rounds):
    billing = ServiceFactory(name="Billing", slug="billing")
    with time_machine.travel(datetime(2026, 11, 20, tzinfo=UTC), tick=False):
        for address in ("em@example.com", "pm@example.com"):
            ReportSubscription.objects.create(email=address)
        ReportSubscription.objects.create(email="billing@example.com", service=billing)

    with time_machine.travel(DUE, tick=False):
        results = twice_at_once(send_due_reports)

    assert sorted(m.to[0] for m in mail.outbox) == [
        "billing@example.com",
        "em@example.com",
        "pm@example.com",
    ]
    assert sum(r["claimed"] for r in results) == 3
    assert Report.objects.count() == 2
    assert set(ReportDelivery.objects.values_list("status", flat=True)) == {"sent"}
    assert set(ReportSubscription.objects.values_list("next_due_at", flat=True)) == {
        datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    }


def test_two_deliveries_of_the_same_row_at_once_send_it_once(postgres):
    with time_machine.travel(DUE, tick=False):
        report, _ = services.obtain_report(
            None, services.period_for(ReportSubscription(frequency="weekly", time_zone="UTC"), DUE)
        )
        delivery = ReportDelivery.objects.create(
            report=report, address="em@example.com", next_attempt_at=DUE
        )
        outcomes = twice_at_once(lambda: outbox.deliver(ReportDelivery, delivery.pk))
    assert sorted(o is None for o in outcomes) == [False, True]
    assert [m.to for m in mail.outbox] == [["em@example.com"]]

"""Two workers at once (PostgreSQL): one request email per signer, one reminder per person, one
decision Event when the last two signers press Go together."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection

from apps.releases.choices import EventVerb
from apps.releases.models import Release
from apps.rollouts import tasks
from apps.signoffs import services
from apps.signoffs.choices import Decision

pytestmark = pytest.mark.django_db(transaction=True)

T0 = "2026-11-02 09:00:00+00:00"


def twice_at_once(func):
    """Run func in two threads released together; each closes its own connection."""
    barrier = threading.Barrier(2)

    def run(arg):
        try:
            barrier.wait(timeout=10)
            return func(arg)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(run, [0, 1]))


def test_two_sweeps_at_once_ask_and_remind_each_person_once(
    postgres, settings, running, erin, paul
):
    settings.SIGNOFF_REMINDER_HOURS = 2
    with time_machine.travel(T0, tick=False) as clock:
        twice_at_once(lambda _: tasks.signoffs_sweep())
        assert sorted(m.to[0] for m in mail.outbox) == ["erin@example.com", "paul@example.com"]
        mail.outbox.clear()

        clock.shift(timedelta(hours=2))
        twice_at_once(lambda _: tasks.signoffs_sweep())
        assert sorted(m.to[0] for m in mail.outbox) == ["erin@example.com", "paul@example.com"]
        assert all(m.subject.startswith("Reminder:") for m in mail.outbox)


def test_the_last_two_gos_at_once_record_one_decision(postgres, running, erin, paul):
    signers = [erin, paul]

    def go(index: int) -> None:
        release = Release.objects.get(pk=running.pk)
        services.sign(release, user=signers[index], decision=Decision.GO)

    twice_at_once(go)
    assert running.events.filter(verb=EventVerb.SIGNED_OFF).count() == 2
    decided = running.events.get(verb=EventVerb.SIGNOFF_DECIDED)
    assert sorted(s["signer"] for s in decided.data["signers"]) == ["erin", "paul"]

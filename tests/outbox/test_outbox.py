"""The outbox's rules, one by one: a message is a row of the change's transaction, one per
address and key, sent once however often it is asked, retried with backoff, taken over after
a dead worker's lease, visible and re-sendable in the admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import transaction
from django.urls import reverse

from apps.core import emails
from apps.core.actors import Actor
from apps.outbox import engine
from apps.outbox.choices import DeliveryStatus
from apps.outbox.emails import write
from apps.outbox.models import Message
from apps.outbox.tasks import sweep
from apps.rollouts import transitions
from tests.factories import ServiceFactory, make_release

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
SYSTEM = Actor.system("tests")


@pytest.fixture
def release(db):
    service = ServiceFactory(notification_emails="a@example.com, b@example.com")
    return make_release(service=service)


def test_a_rolled_back_change_leaves_no_message(release, run):
    class Refused(Exception):
        pass

    with pytest.raises(Refused), transaction.atomic():
        transitions.start(release, actor=SYSTEM)
        assert Message.objects.count() == 2  # written with the step, one per address
        raise Refused
    assert Message.objects.count() == 0
    assert mail.outbox == []


def test_writing_the_same_message_twice_stores_and_sends_it_once(release, run):
    run(transitions.start, release, actor=SYSTEM)
    event = release.events.latest("pk")
    again = run(
        write,
        "release-transition",
        ["a@example.com", "A@example.com ", "b@example.com"],
        key=f"release-event-{event.pk}",
        args={"event": event.pk},
    )
    assert again == []  # both exist already (addresses compare without case)
    assert Message.objects.count() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["a@example.com", "b@example.com"]


def test_an_unknown_kind_is_refused_when_written():
    with pytest.raises(LookupError, match="no-such-email"):
        write("no-such-email", ["a@example.com"], key="k", args={})


def test_a_send_is_claimed_once_and_retried_with_backoff(release, settings):
    settings.EMAIL_BACKEND = "tests.outbox.test_outbox.RefusingBackend"
    with time_machine.travel(T0, tick=False) as clock:
        transitions.start(release, actor=SYSTEM)  # not run on commit here: sent by hand
        message = Message.objects.order_by("pk").first()
        failed = engine.deliver(Message, message.pk)
        assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, 1)
        assert failed.last_error == "ConnectionRefusedError: the mail server is down"
        assert failed.next_attempt_at == T0 + timedelta(seconds=30)
        assert engine.deliver(Message, message.pk) is None  # not due yet

        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        clock.shift(timedelta(seconds=30))
        sent = engine.deliver(Message, message.pk)
        assert (sent.status, sent.attempts, sent.sent_at) == (
            DeliveryStatus.SENT,
            2,
            T0 + timedelta(seconds=30),
        )
        assert engine.deliver(Message, message.pk) is None  # sent: never again
    assert [m.to for m in mail.outbox] == [[message.to]]


class RefusingBackend:
    def __init__(self, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("the mail server is down")


def test_a_dead_workers_claim_is_taken_over_by_the_sweep_after_the_lease(release, settings):
    assert settings.OUTBOX_LEASE_SECONDS == 120  # "within minutes", not Redis' hour
    with time_machine.travel(T0, tick=False) as clock:
        transitions.start(release, actor=SYSTEM)
        message = Message.objects.order_by("pk").first()
        # A worker claimed it and died mid-send: the claim stays, nothing was recorded.
        Message.objects.filter(pk=message.pk).update(claimed_at=T0, attempts=1)
        clock.shift(timedelta(seconds=119))
        assert message.pk not in engine.due_for_retry(Message)
        clock.shift(timedelta(seconds=2))
        assert message.pk in engine.due_for_retry(Message)
        assert sweep()["outbox.message"] == 2  # the taken-over one, and the stray second one
    message.refresh_from_db()
    assert (message.status, message.attempts, message.claimed_at) == (DeliveryStatus.SENT, 2, None)


def test_every_attempt_of_a_message_carries_one_message_id(release, settings, run):
    run(transitions.start, release, actor=SYSTEM)
    message = Message.objects.order_by("pk").first()
    sent = next(m for m in mail.outbox if m.to == [message.to])
    assert sent.extra_headers["Message-ID"] == emails.message_id(message.key)
    assert emails.message_id(message.key) == emails.message_id(message.key)
    assert emails.message_id(message.key) != emails.message_id(message.key + "x")


def test_the_admin_lists_messages_with_attempts_and_sends_failed_ones_again(
    release, settings, client, rita, alice, run
):
    settings.EMAIL_BACKEND = "tests.outbox.test_outbox.RefusingBackend"
    run(transitions.start, release, actor=SYSTEM)
    assert set(Message.objects.values_list("status", flat=True)) == {DeliveryStatus.FAILED}

    client.force_login(alice)  # an approver: addresses are not theirs to read
    assert client.get(reverse("admin:outbox_message_changelist")).status_code == 403

    client.force_login(rita)
    page = client.get(reverse("admin:outbox_message_changelist")).content.decode()
    assert "release-transition" in page and "a@example.com" in page
    assert "ConnectionRefusedError" in page

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ids = list(Message.objects.values_list("pk", flat=True))
    response = run(
        client.post,
        reverse("admin:outbox_message_changelist"),
        {"action": "send_again", "_selected_action": ids},
        follow=True,
    )
    assert "Queued 2 message(s) to send again." in response.content.decode()
    assert set(Message.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    assert len(mail.outbox) == 2
    response = run(
        client.post,
        reverse("admin:outbox_message_changelist"),
        {"action": "send_again", "_selected_action": ids},
        follow=True,
    )
    assert "a sent message is never sent twice" in response.content.decode()
    assert len(mail.outbox) == 2

"""Notifications against real local servers: Slack-compatible webhook posts, retries with backoff,
and channels that are down never costing the incident."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.core import mail

from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import Channel, DeliveryStatus, IncidentVerb, Severity
from apps.incidents.models import Incident, IncidentRouting, NotificationDelivery
from apps.outbox import engine as outbox
from apps.outbox.tasks import sweep
from apps.rollouts import gate
from tests.factories import make_release
from tests.incidents.conftest import closed_port, serve

pytestmark = pytest.mark.django_db

T0 = datetime.fromisoformat("2026-03-10 10:00:00+00:00")


def retry_deliveries() -> int:
    """The outbox sweep; how many incident deliveries it queued."""
    return sweep()["incidents.notificationdelivery"]


def open_incident(service, run, actor=None, severity=Severity.SEV2) -> Incident:
    return run(
        lifecycle.open_incident,
        service=service,
        title="Checkout answers 500",
        severity=severity,
        actor=actor or Actor.system("tests"),
    )


def test_every_change_is_posted_to_the_service_webhook_as_slack_json(
    service, policy, receiver, rita_actor, run
):
    IncidentRouting.objects.create(service=service, policy=policy, webhook_url=receiver.url)
    incident = open_incident(service, run)
    run(lifecycle.acknowledge, incident, actor=rita_actor, reason="Looking")

    assert [r["path"] for r in receiver.received] == ["/hooks/slack"] * 3
    assert {r["content_type"] for r in receiver.received} == {"application/json"}
    # One key per post, the same on its retries: three posts, three keys.
    assert len({r["idempotency_key"] for r in receiver.received}) == 3
    assert all(len(r["idempotency_key"] or "") == 32 for r in receiver.received)
    texts = [r["json"]["text"] for r in receiver.received]
    assert texts[0].startswith(f"[SEV2] Incident #{incident.pk} opened: Checkout answers 500")
    assert texts[1].startswith(f"[SEV2] Incident #{incident.pk} escalated to L1: paging Ada")
    assert texts[2].startswith(f"[SEV2] Incident #{incident.pk} acknowledged by rita")
    assert f"/incidents/{incident.pk}/" in texts[2]
    blocks = receiver.received[2]["json"]["blocks"]
    assert blocks[0]["type"] == "section" and "Looking" in blocks[0]["text"]["text"]
    assert "AI Orchestra" in blocks[1]["elements"][0]["text"]
    webhooks = NotificationDelivery.objects.filter(channel=Channel.WEBHOOK)
    assert list(webhooks.values_list("status", flat=True)) == [DeliveryStatus.SENT] * 3


def test_a_500_is_recorded_and_retried_after_its_backoff(service, receiver, run):
    IncidentRouting.objects.create(service=service, webhook_url=receiver.url)
    receiver.statuses = [500]
    with time_machine.travel(T0, tick=False) as clock:
        incident = open_incident(service, run)

        delivery = NotificationDelivery.objects.get()
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
        assert delivery.last_error == "HTTP 500 Internal Server Error: upstream exploded"
        assert delivery.next_attempt_at == T0 + timedelta(seconds=30)
        failed = incident.events.get(verb=IncidentVerb.NOTIFICATION_FAILED)
        assert failed.data["error"].startswith("HTTP 500")
        assert failed.data["retry_at"] == (T0 + timedelta(seconds=30)).isoformat()
        assert len(receiver.received) == 1  # the task's own retry waits for the backoff

        clock.move_to(T0 + timedelta(seconds=29))
        assert run(retry_deliveries) == 0
        clock.move_to(T0 + timedelta(seconds=30))
        assert run(retry_deliveries) == 1

    # The retry carries the first attempt's key: the receiver can tell it is the same post.
    assert receiver.received[0]["idempotency_key"] == receiver.received[1]["idempotency_key"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.sent_at) == (
        DeliveryStatus.SENT,
        2,
        T0 + timedelta(seconds=30),
    )
    assert len(receiver.received) == 2
    assert receiver.received[0]["json"] == receiver.received[1]["json"]
    verbs = list(incident.events.order_by("id").values_list("verb", flat=True))
    assert verbs == [
        IncidentVerb.OPENED,
        IncidentVerb.NOTIFICATION_FAILED,
        IncidentVerb.NOTIFIED,
    ]


def test_email_and_webhook_both_down_the_incident_stands_and_deliveries_wait(
    service, policy, production, api, settings, run, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", closed_port()
    hook_port = closed_port()
    IncidentRouting.objects.create(
        service=service, policy=policy, webhook_url=f"http://127.0.0.1:{hook_port}/hook"
    )
    other = make_release(service=service, environment=production)

    with time_machine.travel(T0, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(
                "/api/v1/incidents/",
                {"service": service.slug, "title": "Checkout down", "severity": "sev2"},
                format="json",
            )
        assert response.status_code == 201, response.content

        incident = Incident.objects.get(pk=response.json()["id"])
        assert incident.status == "open"
        assert list(incident.events.order_by("id").values_list("verb", flat=True))[:2] == [
            IncidentVerb.OPENED,
            IncidentVerb.ESCALATED,
        ]
        deliveries = list(incident.deliveries.order_by("id"))
        assert [(d.channel, d.status) for d in deliveries] == [
            (Channel.WEBHOOK, DeliveryStatus.FAILED),  # "opened"
            (Channel.EMAIL, DeliveryStatus.FAILED),  # Ada's L1 page
            (Channel.WEBHOOK, DeliveryStatus.FAILED),  # "escalated to L1"
        ]
        for delivery in deliveries:
            assert "Connection refused" in delivery.last_error or "111" in delivery.last_error
            assert delivery.next_attempt_at == T0 + timedelta(seconds=30)
        # The incident does its job regardless: it holds the service's other rollouts.
        assert [b.kind for b in gate.evaluate(other).blockers] == ["incident"]

        clock.move_to(T0 + timedelta(seconds=30))
        assert run(retry_deliveries) == 3  # still down: tried again, waiting longer
        assert set(incident.deliveries.values_list("attempts", flat=True)) == {2}
        assert set(incident.deliveries.values_list("next_attempt_at", flat=True)) == {
            T0 + timedelta(seconds=90)
        }

        # Both come back.
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        hook = serve(hook_port)
        try:
            clock.move_to(T0 + timedelta(seconds=90))
            assert run(retry_deliveries) == 3
        finally:
            hook.close()

    assert set(incident.deliveries.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    assert len(hook.received) == 2


def test_a_slow_webhook_times_out_and_fails(service, receiver, settings, run):
    settings.INCIDENTS_WEBHOOK_TIMEOUT = 0.2
    receiver.delay = 1.0
    IncidentRouting.objects.create(service=service, webhook_url=receiver.url)
    open_incident(service, run)
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert "timed out" in delivery.last_error


def test_a_delivery_is_sent_once_however_often_it_is_asked(service, receiver, run):
    IncidentRouting.objects.create(service=service, webhook_url=receiver.url)
    open_incident(service, run)
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SENT
    assert outbox.deliver(NotificationDelivery, delivery.pk) is None
    run(retry_deliveries)
    assert len(receiver.received) == 1


def test_a_delivery_queued_while_the_broker_was_down_is_sent_by_the_sweep(service, receiver):
    IncidentRouting.objects.create(service=service, webhook_url=receiver.url)
    with time_machine.travel(T0, tick=False) as clock:
        # No on-commit callbacks run here: as if queueing the task had failed.
        open_incident(service, lambda func, **kwargs: func(**kwargs))
        assert NotificationDelivery.objects.get().status == DeliveryStatus.PENDING
        # Just created: its own task may still come.
        assert outbox.due_for_retry(NotificationDelivery) == []
        clock.move_to(T0 + timedelta(minutes=1))
        retry_deliveries()
    assert NotificationDelivery.objects.get().status == DeliveryStatus.SENT
    assert len(receiver.received) == 1


def test_after_its_last_attempt_a_delivery_waits_for_a_person(service, receiver, settings, run):
    settings.INCIDENTS_DELIVERY_MAX_ATTEMPTS = 2
    receiver.statuses = [502, 502]
    IncidentRouting.objects.create(service=service, webhook_url=receiver.url)
    with time_machine.travel(T0, tick=False) as clock:
        open_incident(service, run)
        clock.move_to(T0 + timedelta(minutes=5))
        run(retry_deliveries)
        delivery = NotificationDelivery.objects.get()
        assert (delivery.attempts, delivery.gave_up) == (2, True)
        clock.move_to(T0 + timedelta(hours=5))
        assert run(retry_deliveries) == 0

        queued = run(outbox.resend, NotificationDelivery.objects.all())
    assert queued == [delivery.pk]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 3)
    assert len(receiver.received) == 3
    # A sent delivery is never re-sent.
    assert run(outbox.resend, NotificationDelivery.objects.all()) == []
    assert len(receiver.received) == 3

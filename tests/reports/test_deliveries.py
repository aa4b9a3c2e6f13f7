"""A send that fails (the mail server is down) is recorded on the recipient's delivery, retried
with backoff by the outbox sweep, visible in the admin, and can be sent again from there."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse

from apps.outbox.tasks import sweep
from apps.reports import services
from apps.reports.choices import DeliveryStatus
from apps.reports.models import Report, ReportDelivery, ReportSubscription

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def retried() -> int:
    """The outbox sweep; how many report deliveries it queued."""
    return sweep()["reports.reportdelivery"]


def closed_port() -> int:
    """A local port nobody listens on: connecting is refused, as to a mail server that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_down(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = closed_port()
    settings.EMAIL_TIMEOUT = 2
    return settings


def subscribe(**fields) -> ReportSubscription:
    with time_machine.travel(T0 - timedelta(days=2), tick=False):
        return ReportSubscription.objects.create(email="em@example.com", **fields)


def test_a_failed_send_is_retried_with_backoff_until_it_goes_through(run, smtp_down, settings):
    subscribe()
    with time_machine.travel(T0, tick=False) as clock:
        run(services.send_due)
        delivery = ReportDelivery.objects.get()
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
        assert "ConnectionRefusedError" in delivery.last_error
        assert delivery.next_attempt_at == T0 + timedelta(seconds=30)

        clock.move_to(T0 + timedelta(seconds=29))
        assert run(retried) == 0
        clock.move_to(T0 + timedelta(seconds=30))
        assert run(retried) == 1
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.next_attempt_at) == (2, T0 + timedelta(seconds=90))

        # The mail server is back.
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        clock.move_to(T0 + timedelta(seconds=90))
        assert run(retried) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.SENT, 3, "")
    assert delivery.sent_at == T0 + timedelta(seconds=90)
    assert [m.to for m in mail.outbox] == [["em@example.com"]]
    assert Report.objects.count() == 1  # retries resend the stored report, never a new one


def test_after_the_last_attempt_it_stays_failed_for_a_person(run, smtp_down, settings):
    settings.REPORTS_DELIVERY_MAX_ATTEMPTS = 2
    subscribe()
    with time_machine.travel(T0, tick=False) as clock:
        run(services.send_due)
        clock.move_to(T0 + timedelta(minutes=1))
        run(retried)
        clock.move_to(T0 + timedelta(hours=5))
        assert run(retried) == 0
    delivery = ReportDelivery.objects.get()
    assert delivery.gave_up and delivery.attempts == 2


def test_the_admin_shows_the_failure_and_re_sends_it(
    run, smtp_down, settings, client, rita, django_capture_on_commit_callbacks
):
    subscribe()
    with time_machine.travel(T0, tick=False):
        run(services.send_due)
    report = Report.objects.get()
    client.force_login(rita)

    listing = client.get(reverse("admin:reports_report_changelist")).content.decode()
    assert "0/1 sent" in listing and "1 failed" in listing
    page = client.get(reverse("admin:reports_report_change", args=[report.pk])).content.decode()
    assert "em@example.com" in page and "ConnectionRefusedError" in page
    deliveries = client.get(reverse("admin:reports_reportdelivery_changelist")).content.decode()
    assert "Failed" in deliveries and "ConnectionRefusedError" in deliveries

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:reports_report_changelist"),
            {"action": "resend_failed", "_selected_action": [report.pk]},
            follow=True,
        )
    assert "Queued 1 delivery(ies) to send again." in response.content.decode()
    assert [m.to for m in mail.outbox] == [["em@example.com"]]
    assert ReportDelivery.objects.get().status == DeliveryStatus.SENT

    # Nothing left to re-send: a second click sends nothing twice.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:reports_report_changelist"),
            {"action": "resend_failed", "_selected_action": [report.pk]},
            follow=True,
        )
    assert "Nothing to re-send" in response.content.decode()
    assert len(mail.outbox) == 1


def test_send_now_sends_the_last_week_without_moving_the_schedule(
    run, client, rita, django_capture_on_commit_callbacks
):
    subscription = subscribe()
    due = subscription.next_due_at
    client.force_login(rita)
    with (
        time_machine.travel(T0 - timedelta(days=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(
            reverse("admin:reports_reportsubscription_changelist"),
            {"action": "send_now", "_selected_action": [subscription.pk]},
            follow=True,
        )
    assert (
        "Sending 1 report(s): Week 46, 9–15 Nov 2026 to em@example.com."
        in response.content.decode()
    )
    assert mail.outbox[0].subject.endswith("Week 46, 9–15 Nov 2026")
    subscription.refresh_from_db()
    assert subscription.next_due_at == due


def test_viewers_see_the_archive_but_cannot_re_send(client, victor, run):
    subscribe()
    with time_machine.travel(T0, tick=False):
        run(services.send_due)
    client.force_login(victor)
    page = client.get(reverse("admin:reports_report_changelist")).content.decode()
    assert "1/1 sent" in page
    assert "resend_failed" not in page
    assert client.get(reverse("admin:reports_reportsubscription_add")).status_code == 403


def test_the_report_changelist_takes_a_fixed_number_of_queries(
    client, rita, run, django_assert_num_queries, service
):
    subscribe()
    subscribe(service=service)
    with time_machine.travel(T0, tick=False):
        run(services.send_due)
    client.force_login(rita)
    url = reverse("admin:reports_report_changelist")
    client.get(url)
    with django_assert_num_queries(10) as context:
        client.get(url)
    before = len(context.captured_queries)
    with time_machine.travel(T0 + timedelta(days=7), tick=False):
        run(services.send_due)
    with django_assert_num_queries(before):
        client.get(url)

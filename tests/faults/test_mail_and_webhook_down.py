"""The mail server and the chat webhook are down: incident pages, webhook posts and reports wait
as failed deliveries (the incident stands, the report is stored), and go out, once each, when
the servers are back and the outbox sweep comes round.

The SMTP server is a real one (aiosmtpd) on 127.0.0.1, started, stopped and started again by the
test on one port; the webhook receiver is a local HTTP server likewise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
import time_machine

from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import Channel, DeliveryStatus, IncidentStatus, IncidentVerb
from apps.incidents.models import NotificationDelivery
from apps.outbox.tasks import sweep
from apps.reports import services as reports
from apps.reports.choices import DeliveryStatus as ReportDeliveryStatus
from apps.reports.models import ReportDelivery, ReportSubscription
from tests.factories import ServiceFactory
from tests.faults.conftest import page_on_call
from tests.faults.services import free_port
from tests.incidents.conftest import serve

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Inbox:
    """A real SMTP server on 127.0.0.1 that keeps what it receives; start() and stop() at will."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list = []
        self.controller = None

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        message = message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def inbox(settings):
    pytest.importorskip("aiosmtpd")
    server = Inbox(free_port())
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 2
    yield server
    server.stop()


def test_deliveries_wait_as_failed_while_mail_and_webhook_are_down_then_go_out_once(
    inbox, run
) -> None:
    hook_port = free_port()
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    page_on_call(service, webhook_url=f"http://127.0.0.1:{hook_port}/hooks/slack")
    with time_machine.travel(T0 - timedelta(days=2), tick=False):
        ReportSubscription.objects.create(email="em@example.com")

    with time_machine.travel(T0, tick=False) as clock:
        # Both down: nothing listens on either port.
        incident = run(
            lifecycle.open_incident,
            service=service,
            title="Checkout errors",
            severity="sev2",
            actor=Actor.system("tests"),
        )
        run(reports.send_due)
        incident.refresh_from_db()
        assert incident.status == IncidentStatus.OPEN  # the incident stands
        pages = NotificationDelivery.objects.filter(incident=incident)
        assert {(d.channel, d.status) for d in pages} == {
            (Channel.EMAIL, DeliveryStatus.FAILED),
            (Channel.WEBHOOK, DeliveryStatus.FAILED),
        }
        assert all(d.next_attempt_at == T0 + timedelta(seconds=30) for d in pages)
        assert all("refused" in d.last_error.lower() or "111" in d.last_error for d in pages)
        report = ReportDelivery.objects.get()
        assert report.status == ReportDeliveryStatus.FAILED
        assert report.next_attempt_at is not None
        assert inbox.messages == []

        # Back up, but the backoff has not run out: nothing is sent early.
        inbox.start()
        hook = serve(hook_port)
        try:
            clock.move_to(T0 + timedelta(seconds=20))
            assert sum(run(sweep).values()) == 0
            assert inbox.messages == []

            # The sweep comes round after the backoff: everything goes out.
            clock.move_to(report.next_attempt_at + timedelta(seconds=1))
            swept = run(sweep)
            assert swept["incidents.notificationdelivery"] == pages.count()
            assert swept["reports.reportdelivery"] == 1
            # And again later: nothing is sent twice.
            clock.move_to(T0 + timedelta(hours=1))
            assert sum(run(sweep).values()) == 0
        finally:
            hook.close()

    assert {d.status for d in NotificationDelivery.objects.filter(incident=incident)} == {
        DeliveryStatus.SENT
    }
    assert ReportDelivery.objects.get().status == ReportDeliveryStatus.SENT
    recipients = sorted(rcpt for rcpts, _ in inbox.messages for rcpt in rcpts)
    assert recipients == ["ada@example.com", "em@example.com"]
    page = next(m for rcpts, m in inbox.messages if rcpts == ["ada@example.com"])
    assert "Checkout errors" in str(page["Subject"])
    posted = [r["json"]["text"] for r in hook.received]
    assert len(posted) == pages.filter(channel=Channel.WEBHOOK).count()
    assert any("Checkout errors" in text for text in posted)
    verbs = list(incident.events.values_list("verb", flat=True))
    assert IncidentVerb.NOTIFICATION_FAILED in verbs and IncidentVerb.NOTIFIED in verbs

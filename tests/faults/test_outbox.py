"""Every kind of outgoing message survives the two faults that used to lose one: the broker down at
the moment of the change, and the worker SIGKILLed in the middle of the send. Each arrives once.

Real parts: a redis-server of the test's own (stopped and started), Celery workers and beat as
processes (tests/faults/services.py), a real SMTP server (aiosmtpd) and a real HTTP webhook
receiver on 127.0.0.1. Both servers can "stall": they take the message and never answer, so a
worker hangs mid-send until it is killed; a stalled message is not delivered (the sender never
heard "accepted"), as with a real server.

The kinds: a transition email, a metric-check warning, a sign-off request, a sign-off reminder, a
no-go told to the list, an incident page, an incident webhook post, a report.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.utils import timezone

from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.models import (
    Contact,
    EscalationLevel,
    EscalationPolicy,
    IncidentRouting,
    NotificationDelivery,
)
from apps.outbox.choices import DeliveryStatus
from apps.outbox.models import Message
from apps.releases.choices import EventVerb
from apps.releases.models import Event
from apps.reports import services as reports
from apps.reports.models import ReportDelivery, ReportSubscription
from apps.rollouts import transitions
from apps.rollouts.breach_response import evaluate_and_act
from apps.signoffs import asking
from apps.signoffs import services as signoffs
from apps.signoffs.choices import Decision
from apps.signoffs.models import SignOffRequest
from tests.checks.conftest import criterion, push
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release
from tests.faults.services import free_port, wait_for
from tests.signoffs.conftest import add_rule, member

pytestmark = [pytest.mark.services, pytest.mark.real_worker]

SYSTEM = Actor.system("tests")
LIST = "list@example.com"


# --- the outside world --------------------------------------------------------------------


class Inbox:
    """An SMTP server on 127.0.0.1 keeping what it accepts; while `stall`, it answers nothing."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted: list[tuple[list[str], Any]] = []
        self.stalled: list[list[str]] = []
        self.stall = False
        self.controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.stall:
            self.stalled.append(list(envelope.rcpt_tos))
            await asyncio.Event().wait()  # never answers: the sender hangs until it dies
        message = message_from_bytes(envelope.content, policy=default_policy)
        self.accepted.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    def to(self, address: str, *, containing: str = "") -> list[Any]:
        """Accepted messages to `address` whose subject contains `containing`."""
        return [
            m
            for rcpts, m in self.accepted
            if address in rcpts and containing in " ".join(str(m["Subject"]).split())
        ]


@dataclass
class Hook:
    """A webhook receiver on 127.0.0.1; while `stall`, it reads the post and never answers."""

    port: int = field(default_factory=free_port)
    received: list[dict[str, Any]] = field(default_factory=list)
    stalled: list[dict[str, Any]] = field(default_factory=list)
    stall: bool = False
    server: Any = None

    def start(self) -> None:
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if hook.stall:
                    hook.stalled.append(body)
                    threading.Event().wait(300)
                    return
                hook.received.append(body)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/chat"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def outside(celery) -> Iterator[tuple[Inbox, Hook]]:
    """The mail server and the webhook receiver, and the Celery processes sending to them."""
    pytest.importorskip("aiosmtpd")
    inbox, hook = Inbox(), Hook()
    inbox.start()
    hook.start()
    celery.extra_env.update(
        {
            "EMAIL_URL": f"smtp://127.0.0.1:{inbox.port}",
            # A stalled send hangs until the test kills its worker, never times out first.
            "EMAIL_TIMEOUT": "120",
            "INCIDENTS_WEBHOOK_TIMEOUT": "120",
        }
    )
    try:
        yield inbox, hook
    finally:
        inbox.stop()
        hook.stop()


# --- one change per kind of message ----------------------------------------------------------


@dataclass
class Kind:
    """A kind of message: the change that causes one, its rows, and how many arrived."""

    name: str
    cause: Callable[[], None]
    rows: Callable[[], QuerySet]
    arrived: Callable[[], int]
    # Whether a send of this kind goes to the webhook receiver (else to the mail server).
    webhook: bool = False


def kinds(inbox: Inbox, hook: Hook, error_rate: Any) -> list[Kind]:
    """Build the world and return the kinds in an order where each cause is possible (the
    release is asked, reminded and refused before it is paused)."""
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra", notification_emails=LIST)
    managers = Group.objects.create(name="Engineering managers")
    erin = member("erin", managers)
    plan = PlanFactory(
        slug="watched",
        stages=[("canary", 10, timedelta(hours=24), False), ("full", 100, timedelta(0), False)],
    )
    add_rule(plan, "canary", [managers])
    criterion(
        plan, error_rate, warning_threshold=0.02, critical_threshold=None, on_warning="notify"
    )
    release = make_release(service=service, environment=EnvironmentFactory(), plan=plan)
    transitions.start(release, actor=SYSTEM)

    paged = ServiceFactory(name="Billing", slug="billing")
    ada = Contact.objects.create(name="Ada", email="ada@example.com")
    policy = EscalationPolicy.objects.create(name="billing on-call")
    EscalationLevel.objects.create(policy=policy, position=1, after_minutes=0).contacts.set([ada])
    IncidentRouting.objects.create(service=paged, policy=policy)
    chatty = ServiceFactory(name="Search", slug="search")
    IncidentRouting.objects.create(service=chatty, webhook_url=hook.url)
    subscription = ReportSubscription.objects.create(email="em@example.com")

    def event_rows(verb: str) -> QuerySet:
        events = Event.objects.filter(release=release, verb=verb).values_list("pk", flat=True)
        return Message.objects.filter(args__event__in=list(events))

    def breach() -> None:
        # Pushed now, not before: beat's tick would otherwise warn before the fault is set up.
        push(release, error_rate, [0.03] * 6, end=timezone.now(), count=500)
        evaluate_and_act([release])

    def remind() -> None:
        # Asked a day ago: the reminder is due.
        SignOffRequest.objects.update(sent_at=timezone.now() - timedelta(hours=25))
        asking.remind_due()

    def refuse() -> None:
        # Someone else than erin: her reminder still stands when it is sent.
        pia = member("pia", managers)
        signoffs.sign(release, user=pia, decision=Decision.NO_GO, comment="not yet")

    def open_incident(service: Any) -> Callable[[], None]:
        return lambda: lifecycle.open_incident(
            service=service, title=f"{service.name} errors", severity="sev2", actor=SYSTEM
        )

    return [
        Kind(
            "metric-check warning",
            breach,
            lambda: Message.objects.filter(kind="metric-check"),
            lambda: len(inbox.to(LIST, containing="metric check")),
        ),
        Kind(
            "sign-off request",
            lambda: asking.request_signoffs(release, actor=SYSTEM, early=True),
            lambda: Message.objects.filter(kind="signoff-request"),
            lambda: len(inbox.to(erin.email, containing="Sign-off needed")),
        ),
        Kind(
            "sign-off reminder",
            remind,
            lambda: Message.objects.filter(kind="signoff-reminder"),
            lambda: len(inbox.to(erin.email, containing="Reminder")),
        ),
        Kind(
            "no-go told to the list",
            refuse,
            lambda: Message.objects.filter(kind="signoff-event"),
            lambda: len(inbox.to(LIST, containing="no-go")),
        ),
        Kind(
            "transition email",
            lambda: transitions.pause(release, actor=SYSTEM, reason="hold"),
            lambda: event_rows(EventVerb.PAUSED),
            lambda: len(inbox.to(LIST, containing="paused")),
        ),
        Kind(
            "incident page",
            open_incident(paged),
            lambda: NotificationDelivery.objects.filter(incident__service=paged),
            lambda: len(inbox.to(ada.email, containing="L1 page")),
        ),
        Kind(
            "incident webhook post",
            open_incident(chatty),
            lambda: NotificationDelivery.objects.filter(incident__service=chatty),
            lambda: len(hook.received),
            webhook=True,
        ),
        Kind(
            "report",
            lambda: reports.send_now(subscription),
            lambda: ReportDelivery.objects.all(),
            lambda: len(inbox.to("em@example.com")),
        ),
    ]


def all_sent(rows: QuerySet) -> bool:
    statuses = list(rows.values_list("status", flat=True))
    return bool(statuses) and set(statuses) == {DeliveryStatus.SENT}


# --- the faults ------------------------------------------------------------------------------


def test_with_the_broker_down_at_the_change_each_message_arrives_once_when_it_is_back(
    celery, own_redis, outside, error_rate
) -> None:
    inbox, hook = outside
    world = kinds(inbox, hook, error_rate)

    own_redis.stop()
    for kind in world:
        kind.cause()  # commits; queueing its message fails, the row stays
        rows = kind.rows()
        assert rows.exists(), f"{kind.name}: no row was written with the change"
        assert set(rows.values_list("status", flat=True)) == {DeliveryStatus.PENDING}, kind.name
    assert inbox.accepted == [] and hook.received == []

    own_redis.start()
    celery.worker()
    celery.beat()
    for kind in world:
        wait_for(
            lambda kind=kind: all_sent(kind.rows()),
            timeout=60,
            what=f"the outbox sweep to send the {kind.name} the outage held back",
            log=celery.logs(),
        )
    for kind in world:
        rows = kind.rows().count()
        assert kind.arrived() == rows, f"{kind.name}: {kind.arrived()} arrived for {rows} row(s)"


def test_a_worker_killed_mid_send_is_taken_over_and_each_message_arrives_once(
    celery, outside, error_rate
) -> None:
    inbox, hook = outside
    world = kinds(inbox, hook, error_rate)
    celery.beat()
    worker = celery.worker()
    # What the setting-up sent (the release's start, told to the list) goes out first.
    wait_for(
        lambda: not Message.objects.exclude(status=DeliveryStatus.SENT).exists(),
        timeout=30,
        what="the set-up's own emails to be sent",
        log=celery.logs(),
    )
    for kind in world:
        server = hook if kind.webhook else inbox
        stalled_before = len(server.stalled)
        server.stall = True
        kind.cause()
        wait_for(
            lambda server=server, n=stalled_before: len(server.stalled) > n,
            timeout=30,
            what=f"the worker to be in the middle of sending the {kind.name}",
            log=celery.logs(),
        )
        worker.kill()  # SIGKILL mid-send: its claim and its Redis task die unanswered
        server.stall = False
        assert kind.arrived() == 0, f"{kind.name} arrived although its send never finished"

        worker = celery.worker()
        # The lease (6 s here, OUTBOX_LEASE_SECONDS: 2 minutes by default) runs out, the sweep
        # queues the row again, and the new worker sends it.
        wait_for(
            lambda kind=kind: all_sent(kind.rows()),
            timeout=45,
            what=f"the {kind.name} whose worker was killed to be sent by another",
            log=celery.logs(),
        )
        rows = kind.rows().count()
        assert kind.arrived() == rows, f"{kind.name}: {kind.arrived()} arrived for {rows} row(s)"
        attempts = max(kind.rows().values_list("attempts", flat=True))
        assert attempts >= 2, f"{kind.name}: the killed attempt was not counted"

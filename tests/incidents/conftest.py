"""The runbooks' escalation table as data: contacts, an on-call rotation, a policy and routing.

L1 at 0 min: the platform on-call rotation (Ada, then Ben, weekly from Monday 09:00 Berlin).
L2 at 15 min: Sam (senior engineer) and Pia (product manager).
L3 at 30 min: Emma (engineering manager) and Xavier (executive).
L4 at 45 min: Cleo (CTO), SEV1 incidents only.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

import pytest

from apps.incidents.choices import EscalateWhile, Severity, Weekday
from apps.incidents.models import (
    Contact,
    EscalationLevel,
    EscalationPolicy,
    IncidentRouting,
    OnCallRotation,
    RotationMember,
)
from tests.checks.conftest import error_rate  # noqa: F401 (the breach tests' metric fixture)


def contact(name: str, role: str = "", **fields: Any) -> Contact:
    email = f"{name.lower()}@example.com"
    return Contact.objects.create(name=name, role=role, email=email, **fields)


@pytest.fixture
def people(db) -> dict[str, Contact]:
    return {
        "ada": contact("Ada", "Platform engineer", phone="+49 30 1111"),
        "ben": contact("Ben", "Platform engineer"),
        "sam": contact("Sam", "Senior engineer"),
        "pia": contact("Pia", "Product manager"),
        "emma": contact("Emma", "Engineering manager"),
        "xavier": contact("Xavier", "VP Engineering"),
        "cleo": contact("Cleo", "CTO"),
    }


def make_rotation(
    name: str,
    members: list[Contact],
    *,
    zone: str = "Europe/Berlin",
    weekday: int = Weekday.MONDAY,
    at: time = time(9, 0),
    days: int = 7,
    start: date = date(2020, 1, 6),
) -> OnCallRotation:
    rotation = OnCallRotation.objects.create(
        name=name,
        time_zone=zone,
        handoff_weekday=weekday,
        handoff_time=at,
        length_days=days,
        start_date=start,
    )
    for position, member in enumerate(members):
        RotationMember.objects.create(rotation=rotation, contact=member, position=position)
    return rotation


@pytest.fixture
def rotation(people) -> OnCallRotation:
    return make_rotation("Platform on-call", [people["ada"], people["ben"]])


def make_policy(
    people: dict[str, Contact],
    rotation: OnCallRotation,
    *,
    escalate_while: str = EscalateWhile.UNACKNOWLEDGED,
    name: str = "",
    **fields: Any,
) -> EscalationPolicy:
    policy = EscalationPolicy.objects.create(
        name=name or f"Runbook ({escalate_while})", escalate_while=escalate_while, **fields
    )
    EscalationLevel.objects.create(policy=policy, position=1, after_minutes=0, rotation=rotation)
    for position, after, names, severity in (
        (2, 15, ["sam", "pia"], ""),
        (3, 30, ["emma", "xavier"], ""),
        (4, 45, ["cleo"], Severity.SEV1),
    ):
        level = EscalationLevel.objects.create(
            policy=policy, position=position, after_minutes=after, min_severity=severity
        )
        level.contacts.set([people[name] for name in names])
    return policy


@pytest.fixture
def policy(people, rotation) -> EscalationPolicy:
    return make_policy(people, rotation)


@pytest.fixture
def routing(service, policy) -> IncidentRouting:
    return IncidentRouting.objects.create(service=service, policy=policy)


# --- a webhook receiver on 127.0.0.1 -----------------------------------------------------------


@dataclass
class Receiver:
    """A local HTTP server standing in for Slack: it answers the statuses it is told to."""

    server: http.server.ThreadingHTTPServer
    statuses: list[int] = field(default_factory=list)  # answered in turn; then 200
    received: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/slack"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(port: int = 0) -> Receiver:
    """Start a Receiver on 127.0.0.1 (on `port`, or any free one); call .close() when done."""
    state: dict[str, Receiver] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            me = state["receiver"]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            me.received.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "idempotency_key": self.headers.get("Idempotency-Key"),
                    "json": json.loads(body or b"null"),
                }
            )
            if me.delay:
                threading.Event().wait(me.delay)
            code = me.statuses.pop(0) if me.statuses else 200
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if code < 400 else b"upstream exploded")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    state["receiver"] = Receiver(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state["receiver"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = serve()
    yield started
    started.close()


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""How each sign-off email is built when the outbox sends it (declared in apps.py).

Apart from messages.py, which writes them: the builders read the gate status and the pending
requests (services, asking), and those write messages.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.outbox.emails import Draft, Skip, kind
from apps.outbox.models import Message
from apps.releases.models import Event

from .asking import pending_for
from .messages import DECISION, REMINDER, REQUEST, signoff_url
from .models import SignOffRequest
from .services import gate_status


def _request_sent(message: Message) -> None:
    # When the person was asked: their reminder comes a reminder period after this.
    SignOffRequest.objects.filter(pk=message.args.get("request"), sent_at__isnull=True).update(
        sent_at=message.sent_at or timezone.now()
    )


@kind(REQUEST, sent=_request_sent)
def request_email(args: dict[str, Any]) -> Draft:
    request = (
        SignOffRequest.objects.select_related(
            "user", "stage", "release__service", "release__environment", "release__current_stage"
        )
        .filter(pk=args["request"])
        .first()
    )
    if request is None:
        raise Skip("The sign-off request is gone.")
    status = gate_status(request.release)
    return Draft(
        REQUEST,
        {
            "request": request,
            "release": request.release,
            "person": request.user,
            "gate_label": status.gate.label if status else "",
            "rule": status.rule.describe() if status else "",
            "needed": status.assessment.still_needed() if status else "",
            "blockers": request.gate_blockers,
            "signoff_url": signoff_url(request.release_id),
        },
    )


@kind(REMINDER)
def reminder_email(args: dict[str, Any]) -> Draft:
    person = get_user_model().objects.filter(pk=args["user"], is_active=True).first()
    if person is None:
        raise Skip("The person is no longer active.")
    requests = list(
        SignOffRequest.objects.filter(pk__in=args["requests"], user_id=person.pk)
        .select_related("release__service", "release__environment", "release__current_stage")
        .order_by("requested_at", "pk")
    )
    pending = pending_for(requests, timezone.now())
    if not pending:
        raise Skip("Every gate it would remind of was signed or moved on meanwhile.")
    items = [
        {
            "release": r.release,
            "signoff_url": signoff_url(r.release_id),
            "asked_at": r.requested_at,
        }
        for r in pending
    ]
    return Draft(REMINDER, {"person": person, "items": items})


@kind(DECISION)
def decision_email(args: dict[str, Any]) -> Draft:
    event = (
        Event.objects.select_related(
            "release__service", "release__environment", "release__current_stage", "stage"
        )
        .filter(pk=args["event"])
        .first()
    )
    if event is None:
        raise Skip("The timeline entry it tells of is gone.")
    release = event.release
    return Draft(
        DECISION, {"event": event, "release": release, "signoff_url": signoff_url(release.pk)}
    )

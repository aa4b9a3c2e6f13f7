"""Notifications: one delivery row per message, an outbox table (apps/outbox) of its own.

A delivery is created inside the transaction that decides it (a page, a status change) with a
unique idempotency key, and queued once that transaction commits. The outbox engine claims,
sends, retries and sweeps it like every other outgoing message; this module says how a page
or a webhook post is sent, and records each attempt in the incident's timeline. A channel that
is down never blocks or undoes the incident: only the delivery waits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.core import emails
from apps.core.actors import Actor
from apps.outbox import engine as outbox

from .choices import ANNOUNCED_VERBS, Channel, IncidentVerb
from .models import (
    Contact,
    EscalationStep,
    Incident,
    IncidentEvent,
    IncidentRouting,
    NotificationDelivery,
)
from .models.oncall import validate_http_url

logger = logging.getLogger(__name__)

ACTOR = Actor.system("notifications")


def _create(now: datetime, **fields: Any) -> NotificationDelivery | None:
    """Create a delivery unless one with its idempotency key exists (then: None)."""
    try:
        with transaction.atomic():
            return NotificationDelivery.objects.create(
                next_attempt_at=now, created_at=now, **fields
            )
    except IntegrityError:
        return None


def _queue_after_commit(ids: list[int]) -> None:
    outbox.queue_after_commit(NotificationDelivery, ids)


def announce(
    event: IncidentEvent, *, routing: IncidentRouting | None = None
) -> list[NotificationDelivery]:
    """Post a timeline entry to the service's webhook, when it has one and the verb is told."""
    if event.verb not in ANNOUNCED_VERBS:
        return []
    incident = event.incident
    if routing is None:
        routing = IncidentRouting.objects.filter(service_id=incident.service_id).first()
    if routing is None or not routing.webhook_url:
        return []
    now = timezone.now()
    delivery = _create(
        now,
        incident=incident,
        event=event,
        channel=Channel.WEBHOOK,
        target=routing.webhook_url,
        level=event.data.get("level"),
        round=event.data.get("round", 0),
        idempotency_key=f"webhook:event-{event.pk}",
    )
    if delivery is None:
        return []
    _queue_after_commit([delivery.pk])
    return [delivery]


def page(
    incident: Incident, step: EscalationStep, people: Sequence[Contact], event: IncidentEvent
) -> list[NotificationDelivery]:
    """One email page per person of a level; the key makes a second attempt a no-op."""
    now = timezone.now()
    made = [
        _create(
            now,
            incident=incident,
            event=event,
            channel=Channel.EMAIL,
            contact=person,
            level=step.level.position,
            round=step.round,
            target=person.email,
            idempotency_key=(
                f"page:incident-{incident.pk}:cycle-{incident.reopen_count}:"
                f"level-{step.level.position}:contact-{person.pk}:round-{step.round}"
            ),
        )
        for person in people
        if person.email
    ]
    created = [d for d in made if d is not None]
    _queue_after_commit([d.pk for d in created])
    return created


# --- sending (by the outbox engine, which claims, retries and records) -------------------------


def _send(delivery: NotificationDelivery) -> None:
    if delivery.channel == Channel.EMAIL:
        _send_email(delivery)
    else:
        _post_webhook(delivery)


def _record_sent(delivery: NotificationDelivery) -> None:
    IncidentEvent.record(
        delivery.incident, IncidentVerb.NOTIFIED, ACTOR, data=_event_data(delivery)
    )


def _record_failed(delivery: NotificationDelivery, error: str, retry_at: datetime | None) -> None:
    data = _event_data(delivery) | {
        "error": error[:300],
        "retry_at": retry_at.isoformat() if retry_at else None,
    }
    IncidentEvent.record(delivery.incident, IncidentVerb.NOTIFICATION_FAILED, ACTOR, data=data)


def _event_data(delivery: NotificationDelivery) -> dict[str, Any]:
    return {
        "delivery": delivery.pk,
        "channel": delivery.channel,
        "target": delivery.shown_target,  # never a webhook's secret path in the timeline
        "attempt": delivery.attempts,
        "level": delivery.level,
    }


def incident_links(incident: Incident) -> dict[str, str]:
    """Absolute links for messages: the pages act on POST only, GET asks to confirm."""
    site = settings.SITE_URL.rstrip("/")
    return {
        "acknowledge_url": site + reverse("incidents:acknowledge", args=[incident.pk]),
        "resolve_url": site + reverse("incidents:resolve", args=[incident.pk]),
        "incident_url": site + reverse("incidents:detail", args=[incident.pk]),
    }


def _send_email(delivery: NotificationDelivery) -> None:
    incident = delivery.incident
    context = {
        "incident": incident,
        "contact": delivery.contact,
        "level": delivery.level,
        "round": delivery.round,
        "event": delivery.event,
        **incident_links(incident),
    }
    if not emails.send("incident-page", [delivery.target], context, key=delivery.idempotency_key):
        raise OSError("The mail backend accepted no message.")


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_message(delivery: NotificationDelivery) -> dict[str, Any]:
    """A Slack-compatible message (text, plus blocks for Slack) about one timeline entry."""
    incident = delivery.incident
    event = delivery.event
    links = incident_links(incident)
    what = event.summary() if event else "update"
    by = f" by {event.actor_name}" if event and not event.actor_name.startswith("system:") else ""
    headline = f"[{incident.severity_label}] Incident #{incident.pk} {what}{by}: {incident.title}"
    where = incident.service.name
    if incident.release is not None:
        where += f" {incident.release.version} → {incident.release.destination}"
    facts = (
        f"{incident.severity_label} · {incident.get_status_display()} · {where} · "
        f"opened {incident.opened_at:%Y-%m-%d %H:%M %Z}"
    )
    mrkdwn = f"*<{links['incident_url']}|{slack_escape(headline)}>*" + (
        f"\n{slack_escape(event.reason)}" if event and event.reason else ""
    )
    return {
        "text": f"{headline} ({where}) {links['incident_url']}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(facts)}]},
        ],
    }


def _post_webhook(delivery: NotificationDelivery) -> None:
    url = delivery.target
    validate_http_url(url)  # never let urllib open file:// or ftp:// targets
    body = json.dumps(webhook_message(delivery)).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "rolloutdesk-incidents",
            # The same on every attempt of this post: a receiver that keeps keys can tell a
            # retry (after a timeout or a killed worker) from a new message.
            "Idempotency-Key": hashlib.sha256(delivery.idempotency_key.encode()).hexdigest()[:32],
        },
    )
    with urllib.request.urlopen(request, timeout=settings.INCIDENTS_WEBHOOK_TIMEOUT) as response:
        response.read(1024)


outbox.register(
    NotificationDelivery,
    _send,
    related=("incident__service", "incident__release__environment", "contact", "event"),
    on_sent=_record_sent,
    on_failed=_record_failed,
    max_attempts=lambda: settings.INCIDENTS_DELIVERY_MAX_ATTEMPTS,
)

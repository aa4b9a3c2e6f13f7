"""Notifications: one delivery row per message, sent from Celery after commit, retried with backoff.

A delivery is created inside the transaction that decides it (a page, a status change) with a
unique idempotency key, and queued once that transaction commits. Sending claims the row with a
conditional UPDATE, so a retry, the sweep and a second worker never send it twice; a failure is
recorded on the row and in the incident's timeline, and the row waits for its next attempt.
A channel that is down never blocks or undoes the incident: only the delivery waits.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.error import HTTPError

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from apps.core import emails
from apps.core.actors import Actor
from apps.jobs.runner import Run

from .choices import ANNOUNCED_VERBS, Channel, DeliveryStatus, IncidentVerb
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
# A claim older than this is taken as a worker that died mid-send.
LEASE = timedelta(minutes=5)
RETRY_FIRST = timedelta(seconds=30)
RETRY_LONGEST = timedelta(minutes=30)
# A pending delivery this old was not picked up after commit (broker down): the sweep sends it.
PENDING_GRACE = timedelta(minutes=1)
ERROR_LENGTH = 2000
# The job whose items are the sends: failures that escape a delivery's own error handling.
SEND_JOB = "incidents.send_delivery"


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min, ... at most 30 min between attempts."""
    return min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_LONGEST)


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
    if ids:
        transaction.on_commit(lambda: queue(ids))


def queue(delivery_ids: Sequence[int]) -> None:
    """Hand deliveries to Celery; a broker that is down leaves them to the sweep."""
    from .tasks import send_delivery

    for delivery_id in delivery_ids:
        try:
            send_delivery.delay(delivery_id)
        except Exception:  # the incident is committed already; the sweep retries the send
            logger.exception("Could not queue notification delivery %s", delivery_id)


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


# --- sending ------------------------------------------------------------------------------


def _due(now: datetime) -> Q:
    return Q(
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED], next_attempt_at__lte=now
    ) & (Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - LEASE))


def deliver(delivery_id: int, *, now: datetime | None = None) -> NotificationDelivery | None:
    """Send one delivery if it is due and nobody else is sending it; None when not ours to send.

    A delivery whose send or bookkeeping raises past its own error handling (a malformed
    target, say) is recorded as a failed item of the send job and pushed to its next attempt,
    instead of staying claimed and coming back after every lease for ever.
    """
    now = now or timezone.now()
    claimed = NotificationDelivery.objects.filter(_due(now), pk=delivery_id).update(
        claimed_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    # No savepoint: the send talks to the outside world, never inside a transaction.
    with Run(job=SEND_JOB).item(
        kind=NotificationDelivery._meta.label_lower,
        pk=delivery_id,
        atomic=False,
        on_failure=lambda exc: _push_back(delivery_id, exc, now),
    ):
        return _claimed_send(delivery_id, now)
    return NotificationDelivery.objects.filter(pk=delivery_id).first()


def _push_back(delivery_id: int, exc: Exception, claimed_at: datetime) -> None:
    """The poison-row guard: give the claim back, record the error, wait for the next attempt."""
    attempts = (
        NotificationDelivery.objects.filter(pk=delivery_id)
        .values_list("attempts", flat=True)
        .first()
    )
    if attempts is not None:
        # Not _failed(): its timeline entry describes the delivery, which may be what raised.
        _mark_failed(delivery_id, attempts, _error_text(exc), claimed_at)


def _claimed_send(delivery_id: int, now: datetime) -> NotificationDelivery:
    """Send a delivery this worker has claimed; its failure is recorded on the row."""
    delivery = NotificationDelivery.objects.select_related(
        "incident__service", "incident__release__environment", "contact", "event"
    ).get(pk=delivery_id)
    try:
        if delivery.channel == Channel.EMAIL:
            _send_email(delivery)
        else:
            _post_webhook(delivery)
    except Exception as exc:  # whatever broke, the row records it and waits for a retry
        if not isinstance(exc, OSError):
            logger.exception("Notification delivery %s failed unexpectedly", delivery_id)
        return _failed(delivery, exc, now)
    return _sent(delivery, now)


def _sent(delivery: NotificationDelivery, claimed_at: datetime) -> NotificationDelivery:
    sent_at = timezone.now()
    with transaction.atomic():
        NotificationDelivery.objects.filter(pk=delivery.pk, claimed_at=claimed_at).update(
            status=DeliveryStatus.SENT, sent_at=sent_at, next_attempt_at=None, claimed_at=None
        )
        IncidentEvent.record(
            delivery.incident, IncidentVerb.NOTIFIED, ACTOR, data=_event_data(delivery)
        )
    delivery.refresh_from_db()
    return delivery


def _failed(
    delivery: NotificationDelivery, exc: Exception, claimed_at: datetime
) -> NotificationDelivery:
    error = _error_text(exc)
    with transaction.atomic():
        retry_at = _mark_failed(delivery.pk, delivery.attempts, error, claimed_at)
        data = _event_data(delivery) | {
            "error": error[:300],
            "retry_at": retry_at.isoformat() if retry_at else None,
        }
        IncidentEvent.record(delivery.incident, IncidentVerb.NOTIFICATION_FAILED, ACTOR, data=data)
    delivery.refresh_from_db()
    return delivery


def _mark_failed(
    delivery_id: int, attempts: int, error: str, claimed_at: datetime
) -> datetime | None:
    """Give the claim back as failed, due again after its backoff (None: no attempts left)."""
    retry_at = None
    if attempts < settings.INCIDENTS_DELIVERY_MAX_ATTEMPTS:
        retry_at = timezone.now() + backoff(attempts)
    NotificationDelivery.objects.filter(pk=delivery_id, claimed_at=claimed_at).update(
        status=DeliveryStatus.FAILED, last_error=error, next_attempt_at=retry_at, claimed_at=None
    )
    return retry_at


def _event_data(delivery: NotificationDelivery) -> dict[str, Any]:
    return {
        "delivery": delivery.pk,
        "channel": delivery.channel,
        "target": delivery.shown_target,  # never a webhook's secret path in the timeline
        "attempt": delivery.attempts,
        "level": delivery.level,
    }


def _error_text(exc: Exception) -> str:
    if isinstance(exc, HTTPError):
        try:
            body = exc.read(300).decode("utf-8", "replace").strip()
        except Exception:  # the body is a courtesy; the status says enough
            body = ""
        return f"HTTP {exc.code} {exc.reason}" + (f": {body}" if body else "")
    return f"{type(exc).__name__}: {exc}"[:ERROR_LENGTH]


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
    if not emails.send("incident-page", [delivery.target], context):
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
        where += f" {incident.release.version} → {incident.release.environment.name}"
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
        headers={"Content-Type": "application/json", "User-Agent": "rolloutdesk-incidents"},
    )
    with urllib.request.urlopen(request, timeout=settings.INCIDENTS_WEBHOOK_TIMEOUT) as response:
        response.read(1024)


# --- retries and re-sends -------------------------------------------------------------------


def due_for_retry(now: datetime | None = None, limit: int = 500) -> list[int]:
    """Deliveries whose next attempt is due, and pending ones nobody picked up after commit."""
    now = now or timezone.now()
    waiting = Q(status=DeliveryStatus.FAILED) | Q(next_attempt_at__lte=now - PENDING_GRACE)
    return list(
        NotificationDelivery.objects.filter(_due(now))
        .filter(waiting)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def resend(deliveries: QuerySet[NotificationDelivery]) -> tuple[list[int], int]:
    """Try failed (or stuck) deliveries again now; sent ones are never sent twice."""
    now = timezone.now()
    ids = list(deliveries.exclude(status=DeliveryStatus.SENT).values_list("pk", flat=True))
    # A row a worker is sending right now keeps its claim: the queued send then skips it.
    NotificationDelivery.objects.filter(pk__in=ids).update(next_attempt_at=now)
    skipped = deliveries.filter(status=DeliveryStatus.SENT).count()
    _queue_after_commit(ids)
    return ids, skipped

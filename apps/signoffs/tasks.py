"""Celery tasks: thin wrappers that take ids, claim their work and send the emails."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from apps.core import emails
from apps.releases.models import Event

from . import asking, services
from .models import SignOffRequest

logger = logging.getLogger(__name__)


def signoff_url(release_id: int) -> str:
    return reverse("signoffs:page", args=[release_id])


@shared_task(autoretry_for=(OSError,), retry_backoff=30, max_retries=8)
def send_signoff_request(request_id: int) -> int:
    """Email one person asked to sign; a second run finds the request claimed and sends nothing."""
    if not asking.claim_request(request_id, timezone.now()):
        return 0
    request = (
        SignOffRequest.objects.select_related(
            "user", "stage", "release__service", "release__environment", "release__current_stage"
        )
        .filter(pk=request_id)
        .first()
    )
    if request is None or not request.user.email:
        return 0
    status = services.gate_status(request.release)
    context: dict[str, Any] = {
        "request": request,
        "release": request.release,
        "person": request.user,
        "gate_label": status.gate.label if status else "",
        "rule": status.rule.describe() if status else "",
        "needed": status.assessment.still_needed() if status else "",
        "blockers": request.gate_blockers,
        "signoff_url": signoff_url(request.release_id),
    }
    try:
        return emails.send("signoff-request", [request.user.email], context)
    except Exception:
        # Hand the claim back so the retry (or the next sweep) can send it.
        asking.release_request_claim(request_id)
        raise


@shared_task(autoretry_for=(OSError,), retry_backoff=30, max_retries=8)
def send_signoff_reminder(user_id: int, request_ids: list[int]) -> int:
    """One reminder to one person listing every gate still waiting for them."""
    person = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if person is None or not person.email:
        return 0
    requests = list(
        SignOffRequest.objects.filter(pk__in=request_ids, user_id=user_id)
        .select_related("release__service", "release__environment", "release__current_stage")
        .order_by("requested_at", "pk")
    )
    pending = asking.pending_for(requests, timezone.now())
    if not pending:
        return 0
    items = [
        {
            "release": r.release,
            "signoff_url": signoff_url(r.release_id),
            "asked_at": r.requested_at,
        }
        for r in pending
    ]
    return emails.send("signoff-reminder", [person.email], {"person": person, "items": items})


@shared_task(autoretry_for=(OSError,), retry_backoff=30, max_retries=8)
def notify_signoff_event(event_id: int) -> int:
    """Tell the service's notification list about a no-go or a go/no-go decision."""
    event = (
        Event.objects.select_related(
            "release__service", "release__environment", "release__current_stage", "stage"
        )
        .filter(pk=event_id)
        .first()
    )
    if event is None:
        return 0
    release = event.release
    recipients = release.service.notification_recipients()
    if not recipients:
        return 0
    return emails.send(
        "signoff-event",
        recipients,
        {"event": event, "release": release, "signoff_url": signoff_url(release.pk)},
    )


@shared_task
def sweep() -> dict[str, int]:
    """Every minute: ask for sign-offs on gates that wait only for them, and send reminders."""
    # The gate lives in rollouts; this task is an entry point like the API (see __init__).
    from apps.rollouts.gate_signoffs import request_signoffs_when_ready

    asked = request_signoffs_when_ready()
    reminded = asking.remind_due()
    return {"gates_asked": asked, "people_reminded": len(reminded)}

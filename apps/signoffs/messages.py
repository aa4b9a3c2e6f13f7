"""The emails of sign-offs: requests to sign, reminders, and no-gos and decisions told.

Written here, inside the transaction of the change; built when sent by drafts.py (which reads
the services and the requests, so it sits above them).
"""

from __future__ import annotations

from django.urls import reverse

from apps.outbox.emails import write
from apps.releases.models import Event, Release

from .models import SignOffRequest

REQUEST = "signoff-request"
REMINDER = "signoff-reminder"
DECISION = "signoff-event"


def signoff_url(release_id: int) -> str:
    return reverse("signoffs:page", args=[release_id])


def ask(requests: list[SignOffRequest]) -> None:
    """One message per request: the person asked to sign this gate attempt."""
    for request in requests:
        write(
            REQUEST,
            [request.user.email],
            key=f"signoff-request-{request.pk}",
            args={"request": request.pk},
            about=f"release {request.release_id}",
        )


def remind(user_id: int, address: str, request_ids: list[int], at: str) -> None:
    """One reminder to one person listing every gate still waiting for them (claimed at `at`)."""
    write(
        REMINDER,
        [address],
        key=f"signoff-reminder-user-{user_id}-{at}",
        args={"user": user_id, "requests": request_ids},
    )


def tell(release: Release, events: list[Event]) -> None:
    """No-gos and decisions, to the service's notification list."""
    recipients = release.service.notification_recipients()
    for event in events:
        write(
            DECISION,
            recipients,
            key=f"signoff-event-{event.pk}",
            args={"event": event.pk},
            about=f"release {release.pk}",
        )

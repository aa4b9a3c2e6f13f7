"""The emails a transition sends: one outbox message per address on the service's list."""

from __future__ import annotations

from typing import Any

from apps.outbox.emails import Draft, Skip, kind, write
from apps.releases.models import Event, Release

from . import gate

TRANSITION = "release-transition"


def tell_transitions(release: Release, events: list[Event]) -> None:
    """Inside the transition's transaction: one message per event and address."""
    recipients = release.service.notification_recipients()
    if not recipients:
        return
    for event in events:
        write(
            TRANSITION,
            recipients,
            key=f"release-event-{event.pk}",
            args={"event": event.pk},
            about=f"release {release.pk}",
        )


@kind(TRANSITION)
def transition_email(args: dict[str, Any]) -> Draft:
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
    # The gate as it stands when the email goes out: what the reader can act on now.
    verdict = gate.evaluate(release)
    return Draft(TRANSITION, {"event": event, "release": release, "verdict": verdict})

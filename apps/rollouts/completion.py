"""What a release's completion brings besides the status change, called by transitions.advance."""

from __future__ import annotations

from datetime import datetime

from apps.checklists.services import open_on_completion
from apps.core.actors import Actor
from apps.releases.models import Event, Release


def after_complete(release: Release, *, actor: Actor, now: datetime) -> list[Event]:
    """Open the release's post-deployment and review checklists (inside the transition)."""
    return open_on_completion(release, actor=actor, now=now)

"""Gate checks for go / no-go sign-offs and change-freeze windows (registered in apps.py).

A rule on the plan's start gates `start`; a rule on a stage gates leaving it (advancing, or
completing after the last stage). A freeze window blocks every forward step; pause and rollback
are not gated at all, so a freeze never holds them.
"""

from __future__ import annotations

from datetime import datetime

from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Release, Stage

from . import services as signoffs


def check_signoffs(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """Missing sign-offs name the groups still needed; each standing no-go names its signer."""
    if release.status not in (ReleaseStatus.PLANNED, *ReleaseStatus.active()):
        return []
    status = signoffs.gate_status(release, now=now)
    if status is None:
        return []
    blockers = [
        Blocker(
            BlockerKind.NO_GO,
            f"No-go from {s.signer.get_username()} on {status.gate.label}: {s.comment}",
        )
        for s in status.assessment.no_gos
    ]
    if not status.assessment.quorum_reached:
        blockers.append(
            Blocker(
                BlockerKind.SIGNOFF,
                f"Sign-off needed for {status.gate.label}: "
                f"{status.assessment.still_needed()} ({status.rule.describe()}).",
            )
        )
    if status.author_unmatched:
        blockers.append(
            Blocker(
                BlockerKind.AUTHOR_UNMATCHED,
                f"The release's author {release.author_name.strip()!r} matches no user by "
                "username or email, so nobody can tell whether a go is the author's own, which "
                f"{status.gate.label} does not allow. A release manager sets the release's "
                "author in the admin (or that person's account gets this email).",
            )
        )
    return blockers


def check_freeze(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """An active change-freeze window for the release's service and environment."""
    if release.status not in (ReleaseStatus.PLANNED, ReleaseStatus.IN_PROGRESS):
        return []
    blockers = []
    for window, until in signoffs.active_freezes(release, now):
        local_end = until.astimezone(window.zone)
        why = f": {window.reason}" if window.reason else ""
        blockers.append(
            Blocker(
                BlockerKind.FREEZE,
                f"Change freeze {window.name!r} until {local_end:%a %Y-%m-%d %H:%M} "
                f"{window.time_zone}{why}",
            )
        )
    return blockers

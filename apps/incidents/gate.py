"""Gate check: an unresolved SEV1 or SEV2 incident holds every other rollout of its service.

It blocks start and advance (and complete); pause and rollback are never gated. The release an
incident was raised about is not held by it (its own breach already paused or rolled it back).
A release manager may override with a recorded reason (force=True), as for any red gate.
"""

from __future__ import annotations

from datetime import datetime

from apps.incidents.models import Incident
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Release, Stage


def check_incidents(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """One blocker per unresolved SEV1/SEV2 incident on the release's service."""
    if release.status not in (ReleaseStatus.PLANNED, ReleaseStatus.IN_PROGRESS):
        return []
    return [
        Blocker(
            BlockerKind.INCIDENT,
            f"Incident #{incident.pk} ({incident.severity_label}, "
            f"{incident.get_status_display().lower()}) on {release.service.name}: "
            f"{incident.title} — open since {incident.opened_at:%Y-%m-%d %H:%M %Z}. Rollouts of "
            "the service wait until it is resolved.",
        )
        for incident in Incident.objects.holding_rollouts_of(release)
    ]

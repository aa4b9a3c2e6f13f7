"""Gate check: one running release per service and environment.

Two rollouts of one service in one environment split the same traffic between two versions, and
neither's metric checks mean anything any more. So a planned release may not start while another
release of its service is in progress or paused in its environment. Like any red gate, a release
manager may force the start with a recorded reason; the GATE_OVERRIDDEN event then names the
running release (its blocker carries it).

The check only reads. transitions.start() locks the service row before it asks the gate, so two
starts at once are answered one after the other and the second sees the first running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Release, Stage


@dataclass(frozen=True)
class RunningReleaseBlocker(Blocker):
    """A blocker that also names, as data, the release already running (for CI and the audit)."""

    release: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "release": self.release}


def running_alongside(release: Release) -> list[Release]:
    """The other releases of the release's service holding traffic in its environment now."""
    return list(
        Release.objects.filter(
            service_id=release.service_id,
            environment_id=release.environment_id,
            status__in=ReleaseStatus.active(),
        )
        .exclude(pk=release.pk)
        .select_related("environment", "current_stage")
        .order_by("started_at", "pk")
    )


def _blocker(release: Release, other: Release) -> RunningReleaseBlocker:
    stage = other.current_stage
    where = f" at stage {stage.name} ({stage.traffic_percentage} %)" if stage else ""
    status = other.get_status_display().lower()
    return RunningReleaseBlocker(
        BlockerKind.RUNNING_RELEASE,
        f"Another release of {release.service.name} is running in {other.environment.name}: "
        f"{other.version} (release #{other.pk}), {status}{where}. Complete or roll it back "
        "before starting this one, or force the start with a reason.",
        release={
            "id": other.pk,
            "version": other.version,
            "status": other.status,
            "stage": stage.name if stage else None,
            "traffic_percentage": other.traffic_percentage,
        },
    )


def check_running_release(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """One blocker per other release of the service running in the environment (start only)."""
    if release.status != ReleaseStatus.PLANNED:
        return []
    return [_blocker(release, other) for other in running_alongside(release)]

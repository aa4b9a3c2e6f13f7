"""Gate check: one running release per service and environment.

Two rollouts of one service in one environment split the same traffic between two versions, and
neither's metric checks mean anything any more. So a planned release may not start while another
release of its service is in progress or paused in the environment of its first stage, and a
running one may not advance into another environment (a plan may go staging, then production)
while another release of its service holds traffic there: a release is where its current stage
runs (Release.current_environment), so one may run in staging while another is in production.
Like any red gate, a release manager may force the step with a recorded reason; the
GATE_OVERRIDDEN event then names the running release (its blocker carries it).

The check only reads. transitions.start() and an advance into another environment lock the
service row before they ask the gate, so two such steps at once are answered one after the other
and the second sees the first there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Environment, Release, Stage


@dataclass(frozen=True)
class RunningReleaseBlocker(Blocker):
    """A blocker that also names, as data, the release already running (for CI and the audit)."""

    release: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "release": self.release}


def running_alongside(release: Release, environment: Environment) -> list[Release]:
    """The other releases of the release's service holding traffic in `environment` now (their
    current stage runs there)."""
    return list(
        Release.objects.filter(
            service_id=release.service_id,
            current_stage__environment=environment,
            status__in=ReleaseStatus.active(),
        )
        .exclude(pk=release.pk)
        .select_related("current_stage")
        .order_by("started_at", "pk")
    )


def _blocker(release: Release, other: Release, environment: Environment) -> RunningReleaseBlocker:
    stage = other.current_stage
    where = f" at stage {stage.label}" if stage else ""
    status = other.get_status_display().lower()
    if release.status == ReleaseStatus.PLANNED:
        wait = "before starting this one, or force the start with a reason."
    else:
        wait = f"before this one enters {environment.name}, or force the step with a reason."
    return RunningReleaseBlocker(
        BlockerKind.RUNNING_RELEASE,
        f"Another release of {release.service.name} is running in {environment.name}: "
        f"{other.version} (release #{other.pk}), {status}{where}. Complete or roll it back " + wait,
        release={
            "id": other.pk,
            "version": other.version,
            "status": other.status,
            "stage": stage.name if stage else None,
            "traffic_percentage": other.traffic_percentage,
        },
    )


def entering(release: Release, stage: Stage | None) -> Environment | None:
    """The environment the release's next step enters, None when it stays where it is: the first
    stage's for a start; the next stage's for an advance into another environment."""
    if release.status == ReleaseStatus.PLANNED:
        first = release.stages.select_related("environment").order_by("position").first()
        return first.environment if first is not None else None
    if release.status != ReleaseStatus.IN_PROGRESS or stage is None:
        return None
    following = (
        release.stages.filter(position__gt=stage.position)
        .select_related("environment")
        .order_by("position")
        .first()
    )
    if following is None or following.environment_id == stage.environment_id:
        return None
    return following.environment


def check_running_release(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """One blocker per other release of the service running in the environment the next step
    enters (a start, or an advance into another environment)."""
    environment = entering(release, stage)
    if environment is None:
        return []
    return [
        _blocker(release, other, environment) for other in running_alongside(release, environment)
    ]

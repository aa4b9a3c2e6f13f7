"""The gate: the one answer to "may this release leave its current step?".

The API's gate endpoint, the admin, the auto-advance tick and the emails all call `evaluate`.
Each check is a function `(release, stage, now) -> list[Blocker]` (apps/releases/gate_checks.py);
the app that owns what it reads registers it there in its AppConfig.ready() — checklists,
sign-offs and freezes, metric checks and traffic, incidents — and rollouts registers its own
(status, the one running release, the step into another environment, soak). `evaluate` runs
them in ORDER. `stage` is the current stage while the release runs or is paused, None while it
is planned (the step is then "start").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from apps.core.durations import format_duration
from apps.releases import gate_checks
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Release, Stage

# The order the registered checks run in, by the names they register under: the blockers are
# listed in this order (the pages, CI and the emails show them so).
ORDER = (
    "status",
    "running_release",
    "promotion",
    "soak",
    "checklists",
    "signoffs",
    "freeze",
    "metrics",
    "traffic",
    "incidents",
)


@dataclass
class Verdict:
    """The gate's answer for one release at one moment."""

    release: Release
    step: str  # "start", "advance" or "complete"; "" when the release cannot move forward
    stage: Stage | None
    blockers: list[Blocker] = field(default_factory=list)

    @property
    def can_advance(self) -> bool:
        return not self.blockers

    @property
    def summary(self) -> str:
        if self.can_advance:
            return "green"
        return "; ".join(b.detail for b in self.blockers)

    @property
    def light(self) -> str:
        """The gate at a glance (light_of): green, amber, red or finished."""
        return light_of(self.step, [b.kind for b in self.blockers])


def light_of(step: str, kinds: Iterable[str]) -> str:
    """green: open; amber: every blocker only waits (for time, a tick or a signature); red:
    something is wrong; finished: no next step. The one rule: the pages, the kept verdicts
    (rollouts.GateState) and /metrics all show this."""
    kinds = list(kinds)
    if not step:
        return "finished"
    if not kinds:
        return "green"
    if all(kind in BlockerKind.waiting() for kind in kinds):
        return "amber"
    return "red"


def check_status(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """Only a planned release can start and only a running one can advance."""
    if release.status == ReleaseStatus.PAUSED:
        return [Blocker(BlockerKind.PAUSED, "The release is paused; resume it first.")]
    if release.status in ReleaseStatus.finished():
        return [
            Blocker(BlockerKind.STATUS, f"The release is {release.get_status_display().lower()}.")
        ]
    return []


def check_soak(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """The current stage must have run (unpaused) for its minimum soak time."""
    if release.status != ReleaseStatus.IN_PROGRESS or stage is None:
        return []
    soaked = stage.soaked(now, release.paused_at)
    remaining = stage.min_soak - soaked
    if remaining > timedelta(0):
        return [
            Blocker(
                BlockerKind.SOAK,
                f"Stage {stage.name} has soaked {format_duration(soaked)} of "
                f"{format_duration(stage.min_soak)}; {format_duration(remaining)} remaining.",
            )
        ]
    return []


def evaluate(release: Release, *, now: datetime | None = None) -> Verdict:
    """Return the gate's verdict and every blocker, for the step the release would take next."""
    now = now or timezone.now()
    stage = release.current_stage if release.status in ReleaseStatus.active() else None
    if release.status == ReleaseStatus.PLANNED:
        step = "start"
    elif release.status in ReleaseStatus.active():
        is_last = stage is not None and stage.position == release.stage_count - 1
        step = "complete" if is_last else "advance"
    else:
        step = ""
    blockers: list[Blocker] = []
    for check in gate_checks.in_order(ORDER):
        blockers.extend(check(release, stage, now))
    return Verdict(release=release, step=step, stage=stage, blockers=blockers)

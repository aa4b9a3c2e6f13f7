"""Gate check: a release enters another environment only on evidence from this artifact.

A plan may cross environments (dev, staging, then production): what the earlier stages showed is
the reason the next environment may be trusted with the release. So the step into a stage whose
environment differs from the current stage's is refused until every earlier stage — the current
one included, which passes as it is left — ran the release's current commit (Stage.commit_sha,
stamped when the stage is entered) and every one before the current stage passed. A stage
skipped by a forced step or run on another commit holds the step; a release manager may force it
with a reason, like any red gate. A plan in one environment never meets this check.
"""

from __future__ import annotations

from datetime import datetime

from apps.releases.choices import BlockerKind, ReleaseStatus, StageStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Release, Stage


def _short(sha: str) -> str:
    return sha[:12] if sha else "no commit"


def check_promotion(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """One blocker naming the earlier stages that do not vouch for the release's commit."""
    if release.status != ReleaseStatus.IN_PROGRESS or stage is None:
        return []
    stages = list(release.stages.select_related("environment").order_by("position"))
    following = next((s for s in stages if s.position > stage.position), None)
    if following is None or following.environment_id == stage.environment_id:
        return []
    commit = release.commit_sha.lower()
    missing = []
    for earlier in stages:
        if earlier.position > stage.position:
            break
        passed = earlier.status == StageStatus.PASSED or earlier.pk == stage.pk
        if not passed:
            missing.append(f"{earlier.name} ({earlier.environment.name}) has not passed")
        elif earlier.commit_sha.lower() != commit:
            missing.append(
                f"{earlier.name} ({earlier.environment.name}) ran {_short(earlier.commit_sha)}"
            )
    if not missing:
        return []
    return [
        Blocker(
            BlockerKind.PROMOTION,
            f"Stage {following.name} is in {following.environment.name}: every earlier stage "
            f"must have passed with commit {_short(release.commit_sha)} first, but "
            + "; ".join(missing)
            + ".",
        )
    ]

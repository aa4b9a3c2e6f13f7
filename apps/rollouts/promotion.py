"""A plan across environments: a new artifact sends the release back through what it invalidates.

A release carries one artifact (its version and commit SHA) through all its stages; each stage
keeps the commit it ran (Stage.commit_sha), and the gate lets a release into another environment
only on stages that ran its current commit (gate_promotion). When the commit changes, the
sign-offs given on the old one lapse (apps.signoffs.services.change_commit), and a release whose
plan crosses environments goes back to the first stage of the earliest environment whose stages
ran the old commit, to earn that evidence again. Waiting for the step into the next environment
instead would hold it there for good, so it goes back at once. A plan in one environment only
loses its sign-offs, as it always has.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from apps.core.actors import Actor
from apps.releases.choices import ReleaseStatus, StageStatus
from apps.releases.models import Release, Stage
from apps.signoffs.models import SignOff
from apps.signoffs.services import change_commit

from . import transitions


def send_back_to(release: Release) -> Stage | None:
    """The stage the release must go back to for its current commit; None when it stays.

    None for a release not running or paused, for one whose stages all run in one environment,
    and when every stage it entered ran the current commit.
    """
    if release.status not in ReleaseStatus.active():
        return None
    stages = list(release.stages.order_by("position"))
    if len({s.environment_id for s in stages}) < 2:
        return None
    commit = release.commit_sha.lower()
    entered = [s for s in stages if s.status in (StageStatus.PASSED, StageStatus.ACTIVE)]
    stale = next((s for s in entered if s.commit_sha.lower() != commit), None)
    if stale is None:
        return None
    # The whole environment again, from its first stage: its evidence is one story.
    return next(s for s in stages if s.environment_id == stale.environment_id)


def change_artifact(
    release: Release,
    *,
    commit_sha: str,
    actor: Actor,
    commit_time: datetime | None = None,
    reason: str = "",
) -> tuple[Release, list[SignOff]]:
    """Point the release at a new commit (change_commit: the sign-offs lapse) and, in a plan
    across environments, send it back to where the old commit's evidence starts — one
    transaction. Returns the release and the lapsed sign-offs. The API and the admin call it."""
    with transaction.atomic():
        old = Release.objects.only("commit_sha").get(pk=release.pk).commit_sha
        changed, lapsed = change_commit(
            release, commit_sha=commit_sha, actor=actor, commit_time=commit_time, reason=reason
        )
        target = send_back_to(changed)
        if target is not None:
            why = (
                f"The artifact changed from {old or 'no commit'} to {changed.commit_sha}: "
                f"the evidence from {target.environment.name} on is for the old one."
            )
            changed = transitions.send_back(
                changed,
                to_stage=target,
                from_commit=old,
                actor=actor,
                reason=" ".join(p for p in (reason.strip(), why) if p),
            )
    return changed, lapsed

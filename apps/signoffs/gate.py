"""Gate checks for go / no-go sign-offs and change-freeze windows, and the glue that asks for
sign-offs once a gate waits for nothing else.

A rule on the plan's start gates `start`; a rule on a stage gates leaving it (advancing, or
completing after the last stage). A freeze window blocks every forward step; pause and rollback
are not gated at all, so a freeze never holds them.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from apps.core.actors import Actor
from apps.jobs.runner import job
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.models import Release, Stage
from apps.signoffs import asking
from apps.signoffs import services as signoffs
from apps.signoffs.models import SignOffRequest

from .blockers import Blocker


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


def request_signoffs_when_ready(now: datetime | None = None) -> int:
    """Ask for sign-offs on every gate that waits only for them; returns how many gates asked.

    Releases already asked (automatically or early) for their current gate attempt are skipped
    cheaply; the request rows make a second run, or two at once, ask each person only once.
    Each release is one item of the job: one that fails is recorded and the others are asked.
    """
    from apps.signoffs.models import ReleaseSignOffRule

    from . import gate

    now = now or timezone.now()
    rules = ReleaseSignOffRule.objects.filter(release=OuterRef("pk"))
    # Exists, not a join on the rules: a LEFT JOIN's NULL stage also matched releases with no
    # rule at all, whose start asks for no sign-off.
    candidates = (
        Release.objects.alias(
            has_start_rule=Exists(rules.filter(stage__isnull=True)),
            has_stage_rule=Exists(rules.filter(stage=OuterRef("current_stage"))),
        )
        .filter(
            Q(status=ReleaseStatus.PLANNED, has_start_rule=True)
            | Q(status=ReleaseStatus.IN_PROGRESS, has_stage_rule=True)
        )
        .select_related("service", "environment", "current_stage", "author")
        .order_by("pk")
    )
    actor = Actor.system("sign-off requests")
    asked = 0
    with job("signoffs.request") as run:
        for release in candidates.iterator(chunk_size=200):
            with run.item(release):
                key = signoffs.current_gate(release).key
                if SignOffRequest.objects.filter(release=release, gate_key=key).exists():
                    continue
                verdict = gate.evaluate(release, now=now)
                if any(b.kind not in signoffs.SIGNOFF_BLOCKER_KINDS for b in verdict.blockers):
                    continue  # soak, checklists, metrics or a freeze still hold the gate
                blockers = [b.as_dict() for b in verdict.blockers]
                if asking.request_signoffs(release, actor=actor, blockers=blockers, now=now):
                    asked += 1
    return asked

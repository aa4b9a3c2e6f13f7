"""Every change of a release's status goes through here.

Each transition checks that it is allowed, locks the release row, stamps the stages, writes one
Event and queues notifications after commit. Admin actions, API views and Celery tasks call these
functions; nothing else sets Release.status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.checklists.services import reopen_stage_exits
from apps.core.actors import Actor, ActorKind
from apps.releases import gate_inputs
from apps.releases.choices import EventVerb, ReleaseStatus, StageStatus
from apps.releases.models import Event, Release, Service, Stage

from . import completion, gate, gate_running
from .messages import tell_transitions

logger = logging.getLogger(__name__)

OPERATE_PERM = "releases.operate_release"
FORCE_PERM = "releases.force_advance"


class TransitionError(Exception):
    """The transition is not allowed in the release's current state (HTTP 409)."""

    def __init__(self, message: str, *, blockers: list[gate.Blocker] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.blockers = blockers or []


class TransitionForbidden(TransitionError):
    """The actor may not perform this transition on this release (HTTP 403)."""


# action -> statuses it may start from
ALLOWED_FROM: dict[str, set[str]] = {
    "start": {ReleaseStatus.PLANNED},
    "advance": {ReleaseStatus.IN_PROGRESS},
    "pause": {ReleaseStatus.IN_PROGRESS},
    "resume": {ReleaseStatus.PAUSED},
    "rollback": {ReleaseStatus.IN_PROGRESS, ReleaseStatus.PAUSED},
    "abort": {ReleaseStatus.PLANNED},
    # Paused too: a release manager holding a release may take traffic down before deciding.
    "step_back": {ReleaseStatus.IN_PROGRESS, ReleaseStatus.PAUSED},
}

# Transitions nobody asks for by name (no button, no endpoint): another change causes them.
# send_back follows an artifact change (apps/rollouts/promotion.py).
CAUSED_FROM: dict[str, set[str]] = {
    "send_back": {ReleaseStatus.IN_PROGRESS, ReleaseStatus.PAUSED},
}


def allowed_actions(release: Release, stages: Sequence[Stage] | None = None) -> list[str]:
    """The transitions the release's status permits now (the gate may still refuse one).

    Step back only where there is an earlier stage to go to: not at the first stage. `stages`:
    the release's stages when the caller has them read already (saves a query).
    """
    return [
        action
        for action, sources in ALLOWED_FROM.items()
        if release.status in sources and (action != "step_back" or can_step_back(release, stages))
    ]


def _authorize(actor: Actor, release: Release, *, force: bool, reason: str) -> None:
    if not actor.may_touch_service(release.service_id):
        raise TransitionForbidden(f"This token may not act on service {release.service.slug!r}.")
    if actor.kind == ActorKind.USER and not actor.has_perm(OPERATE_PERM):
        raise TransitionForbidden(f"{actor.name} may not operate releases.")
    if force:
        if not actor.has_perm(FORCE_PERM):
            raise TransitionForbidden("Only a release manager may override a red gate.")
        if not reason.strip():
            raise ValidationError({"reason": "Overriding the gate needs a reason."})


# The stage a caller says the release is at: its name, or its position (0 = the first).
StageRef = str | int


def _describe_state(release: Release) -> str:
    where = f" at stage {release.current_stage.name}" if release.current_stage else ""
    return f"{release.get_status_display().lower()}{where}"


def _check_from_stage(locked: Release, from_stage: StageRef, action: str) -> None:
    """Refuse unless the locked release is still at the stage the caller started from.

    The caller's own read cannot protect a retried request (CI re-sends the same advance; each
    try reads afresh): the stage it names can. A planned or finished release is at no stage.
    """
    if isinstance(from_stage, str):
        named = locked.stages.filter(name=from_stage).count()
        if named > 1:
            raise ValidationError(
                {
                    "from_stage": f"{named} stages of this release are named {from_stage!r}: "
                    "give the stage's position instead."
                }
            )
    stage = locked.current_stage if locked.status in ReleaseStatus.active() else None
    at = stage is not None and (
        stage.name == from_stage if isinstance(from_stage, str) else stage.position == from_stage
    )
    if not at:
        raise TransitionError(
            f"The release is not at stage {from_stage!r} any more: it is now "
            f"{_describe_state(locked)}. Nothing was done; look again before you {action}."
        )


def _run(
    release: Release,
    action: str,
    actor: Actor,
    reason: str,
    apply: Callable[[Release, datetime], list[Event]],
    *,
    force: bool = False,
    from_stage: StageRef | None = None,
) -> Release:
    """Lock, check, apply and record one transition; refresh the caller's instance.

    `from_stage`, when given, is the stage the caller saw: the step is refused (409) once the
    release has left it, so a retried or doubled request never takes the step twice.
    """
    seen = (release.status, release.current_stage_id)
    words = action.replace("_", " ")  # "step back", not "step_back", in what people read
    with transaction.atomic():
        locked = (
            Release.objects.select_for_update(of=("self",))
            .select_related("service", "current_stage")
            .get(pk=release.pk)
        )
        _authorize(actor, locked, force=force, reason=reason)
        if (locked.status, locked.current_stage_id) != seen:
            # Someone else (a person, CI, the tick) moved it after the caller looked: acting on
            # what they saw would do the step twice.
            raise TransitionError(
                f"The release changed meanwhile: it is now {_describe_state(locked)}. "
                f"Look again before you {words}."
            )
        if from_stage is not None:
            _check_from_stage(locked, from_stage, words)
        if locked.status not in ALLOWED_FROM.get(action, CAUSED_FROM.get(action, set())):
            raise TransitionError(
                f"Cannot {words} a release that is {locked.get_status_display().lower()}."
            )
        events = apply(locked, timezone.now())
        # The emails are rows of this transaction: they go out if and only if the step holds.
        tell_transitions(locked, events)
        # Every transition, whichever it is: its own gate and the gates of the service's other
        # unfinished releases (one running release per environment) are recomputed on commit.
        gate_inputs.changed(releases=[locked.pk], services=[locked.service_id])
    release.refresh_from_db()
    return release


def _check_gate(release: Release, actor: Actor, reason: str, force: bool, now: datetime) -> list:
    verdict = gate.evaluate(release, now=now)
    if verdict.can_advance:
        return []
    if not force:
        raise TransitionError(
            f"The gate is red for {verdict.step}: {verdict.summary}", blockers=verdict.blockers
        )
    return [
        Event.record(
            release,
            EventVerb.GATE_OVERRIDDEN,
            actor,
            reason=reason,
            stage=verdict.stage,
            data={"step": verdict.step, "blockers": [b.as_dict() for b in verdict.blockers]},
        )
    ]


def _enter(stage: Stage, now: datetime) -> None:
    stage.status = StageStatus.ACTIVE
    stage.entered_at = now
    # The artifact this stage's evidence is about: the gate into another environment reads it.
    # (stage.release is the locked release: the stages come from its related manager.)
    stage.commit_sha = stage.release.commit_sha
    stage.save(update_fields=["status", "entered_at", "commit_sha"])


def _leave(stage: Stage, status: str, now: datetime, paused_at: datetime | None) -> None:
    if paused_at is not None:
        stage.paused_for += now - paused_at
    stage.status = status
    stage.exited_at = now
    stage.save(update_fields=["status", "exited_at", "paused_for"])


def _lock_service(release: Release) -> None:
    """Hold the service row until the transaction ends: its releases' starts queue up here.

    Two starts of two different releases each lock only their own row, so both would read the
    other as still planned and both pass the gate's "another release is running" check. The
    service row is the lock they share; once the first commits, the second's gate (a fresh read
    under READ COMMITTED) sees it running and refuses. Starts are rare: serialising every start
    of one service, whatever the environment, costs nothing.
    """
    list(Service.objects.select_for_update().filter(pk=release.service_id).values_list("pk"))


def start(
    release: Release,
    *,
    actor: Actor,
    reason: str = "",
    force: bool = False,
    from_stage: StageRef | None = None,
) -> Release:
    """Planned → in progress, entering the first stage.

    Refused (a gate blocker) while another release of the service is running in the same
    environment, unless a release manager forces it with a reason.
    """

    def apply(r: Release, now: datetime) -> list[Event]:
        _lock_service(r)
        events = _check_gate(r, actor, reason, force, now)
        first = r.stages.order_by("position").first()
        _enter(first, now)
        r.status, r.current_stage, r.started_at = ReleaseStatus.IN_PROGRESS, first, now
        r.save(update_fields=["status", "current_stage", "started_at", "updated_at"])
        data: dict = {"stage": first.name, "traffic_percentage": first.traffic_percentage}
        if force and events:
            data["forced"] = True
        return events + [
            Event.record(r, EventVerb.STARTED, actor, reason=reason, stage=first, data=data)
        ]

    return _run(release, "start", actor, reason, apply, force=force, from_stage=from_stage)


def advance(
    release: Release,
    *,
    actor: Actor,
    reason: str = "",
    force: bool = False,
    from_stage: StageRef | None = None,
) -> Release:
    """Leave the current stage for the next one; past the last stage the release completes."""

    def apply(r: Release, now: datetime) -> list[Event]:
        if gate_running.entering(r, r.current_stage) is not None:
            # Into another environment: one release per service there, as for a start.
            _lock_service(r)
        events = _check_gate(r, actor, reason, force, now)
        current = r.current_stage
        _leave(current, StageStatus.PASSED, now, None)
        following = r.stages.filter(position__gt=current.position).order_by("position").first()
        if following is None:
            r.status, r.finished_at = ReleaseStatus.COMPLETED, now
            r.save(update_fields=["status", "finished_at", "updated_at"])
            data = {"from_stage": current.name, "traffic_percentage": 100}
            verb = EventVerb.COMPLETED
            completion.after_complete(r, actor=actor, now=now)
        else:
            _enter(following, now)
            r.current_stage = following
            r.save(update_fields=["current_stage", "updated_at"])
            data = {
                "from_stage": current.name,
                "to_stage": following.name,
                "traffic_percentage": following.traffic_percentage,
            }
            verb = EventVerb.ADVANCED
        if force and events:
            data["forced"] = True
        return events + [
            Event.record(r, verb, actor, reason=reason, stage=following or current, data=data)
        ]

    return _run(release, "advance", actor, reason, apply, force=force, from_stage=from_stage)


def pause(
    release: Release,
    *,
    actor: Actor,
    reason: str = "",
    from_stage: StageRef | None = None,
    breaches: Sequence[dict[str, Any]] = (),
) -> Release:
    """Hold the release at its current traffic; soak time stops counting.

    `breaches`: the metric checks that made the tick pause it (criterion, value, threshold),
    kept in the event's data for CI to read (`GET releases/{id}/events/`).
    """

    def apply(r: Release, now: datetime) -> list[Event]:
        r.status, r.paused_at = ReleaseStatus.PAUSED, now
        r.save(update_fields=["status", "paused_at", "updated_at"])
        data: dict[str, Any] = {"stage": r.current_stage.name}
        if breaches:
            data["breaches"] = list(breaches)
        return [
            Event.record(
                r, EventVerb.PAUSED, actor, reason=reason, stage=r.current_stage, data=data
            )
        ]

    return _run(release, "pause", actor, reason, apply, from_stage=from_stage)


def resume(
    release: Release, *, actor: Actor, reason: str = "", from_stage: StageRef | None = None
) -> Release:
    """Paused → in progress; the paused time is not counted as soak."""

    def apply(r: Release, now: datetime) -> list[Event]:
        stage = r.current_stage
        paused = now - r.paused_at
        stage.paused_for += paused
        stage.save(update_fields=["paused_for"])
        r.status, r.paused_at = ReleaseStatus.IN_PROGRESS, None
        r.save(update_fields=["status", "paused_at", "updated_at"])
        data = {"stage": stage.name, "paused_seconds": int(paused.total_seconds())}
        return [Event.record(r, EventVerb.RESUMED, actor, reason=reason, stage=stage, data=data)]

    return _run(release, "resume", actor, reason, apply, from_stage=from_stage)


def rollback(
    release: Release,
    *,
    actor: Actor,
    reason: str = "",
    from_stage: StageRef | None = None,
    breaches: Sequence[dict[str, Any]] = (),
) -> Release:
    """Take all traffic back from the release; a terminal state (`breaches` as for pause)."""

    def apply(r: Release, now: datetime) -> list[Event]:
        stage = r.current_stage
        _leave(stage, StageStatus.ROLLED_BACK, now, r.paused_at)
        r.stages.filter(status=StageStatus.PENDING).update(status=StageStatus.SKIPPED)
        data: dict[str, Any] = {
            "stage": stage.name,
            "traffic_percentage_before": stage.traffic_percentage,
        }
        if breaches:
            data["breaches"] = list(breaches)
        r.status, r.finished_at, r.paused_at = ReleaseStatus.ROLLED_BACK, now, None
        r.save(update_fields=["status", "finished_at", "paused_at", "updated_at"])
        return [
            Event.record(r, EventVerb.ROLLED_BACK, actor, reason=reason, stage=stage, data=data)
        ]

    return _run(release, "rollback", actor, reason, apply, from_stage=from_stage)


def abort(
    release: Release, *, actor: Actor, reason: str = "", from_stage: StageRef | None = None
) -> Release:
    """Cancel a release that never started."""

    def apply(r: Release, now: datetime) -> list[Event]:
        r.stages.update(status=StageStatus.SKIPPED)
        r.status, r.finished_at = ReleaseStatus.ABORTED, now
        r.save(update_fields=["status", "finished_at", "updated_at"])
        return [Event.record(r, EventVerb.ABORTED, actor, reason=reason)]

    return _run(release, "abort", actor, reason, apply, from_stage=from_stage)


def _reenter_earlier(
    r: Release, target: Stage, now: datetime, *, actor: Actor, why: str
) -> list[dict[str, object]]:
    """Make `target`, an earlier stage, the current one afresh: every stage after it pending
    again, it active with a new entry (its soak starts over) on the release's commit, and the
    exit checklists of the stages it runs again (`target` to the one left) unticked, as their
    sign-offs lapse with the new entry. Returns the checklists reopened (`why`: their items'
    comment)."""
    left = r.current_stage
    reopened = reopen_stage_exits(
        r, positions=range(target.position, left.position + 1), actor=actor, now=now, reason=why
    )
    r.stages.filter(position__gt=target.position).update(
        status=StageStatus.PENDING,
        entered_at=None,
        exited_at=None,
        paused_for=timedelta(0),
        commit_sha="",
    )
    target.exited_at, target.paused_for = None, timedelta(0)
    target.save(update_fields=["exited_at", "paused_for"])
    _enter(target, now)
    r.current_stage = target
    fields = ["current_stage", "updated_at"]
    if r.paused_at is not None:
        # Still paused, now at the earlier stage: its soak counts from the resume.
        r.paused_at = now
        fields.append("paused_at")
    r.save(update_fields=fields)
    return reopened


def send_back(
    release: Release,
    *,
    to_stage: Stage,
    from_commit: str,
    actor: Actor,
    reason: str = "",
) -> Release:
    """Back to `to_stage`, the first stage of an earlier environment, after the artifact changed.

    The evidence of the stages that ran `from_commit` says nothing about the new one, so the
    release goes through them again (apps/rollouts/promotion.py decides where to). A paused
    release stays paused, at the earlier stage.
    """

    def apply(r: Release, now: datetime) -> list[Event]:
        current = r.current_stage
        target = r.stages.select_related("environment").get(pk=to_stage.pk)
        data = {
            "from_stage": current.name,
            "to_stage": target.name,
            "from_environment": current.environment.slug,
            "to_environment": target.environment.slug,
            "from_commit": from_commit,
            "to_commit": r.commit_sha,
            "traffic_percentage": target.traffic_percentage,
        }
        why = f"Sent back to {target.label}: checked again for commit {r.commit_sha}."
        reopened = _reenter_earlier(r, target, now, actor=actor, why=why)
        if reopened:
            data["reopened"] = reopened
        return [Event.record(r, EventVerb.SENT_BACK, actor, reason=reason, stage=target, data=data)]

    return _run(release, "send_back", actor, reason, apply)


def can_step_back(release: Release, stages: Sequence[Stage] | None = None) -> bool:
    """Whether the release has an earlier stage in its current environment to step back to."""
    return bool(earlier_stages(release, stages))


def earlier_stages(release: Release, stages: Sequence[Stage] | None = None) -> list[Stage]:
    """The stages a step back may go to, first to last: earlier ones in the current stage's
    environment (`stages`: the release's, when the caller has them read already)."""
    stage = release.current_stage
    if release.status not in ReleaseStatus.active() or stage is None or stage.position == 0:
        return []
    if stages is None:
        stages = release.stages.filter(position__lt=stage.position).order_by("position")
    return [
        s
        for s in stages
        if s.position < stage.position and s.environment_id == stage.environment_id
    ]


def _stage_to_step_to(r: Release, to_stage: StageRef | None) -> Stage:
    """The earlier stage a step back goes to: the one named, else the one before the current.

    Only within the environment the release runs in now: taking it out of production into
    staging is sending it back to an earlier environment, another step with other
    consequences than serving fewer users.
    """
    current = r.current_stage
    stages = list(r.stages.order_by("position"))
    if to_stage is None:
        earlier = earlier_stages(r, stages)
        if not earlier:
            first = "first stage" if current.position == 0 else "first stage in this environment"
            raise TransitionError(
                f"Cannot step back from {current.label}: it is the release's {first}, "
                "there is no earlier stage to step back to. Pause or roll back instead."
            )
        return earlier[-1]
    if isinstance(to_stage, str):
        named = [s for s in stages if s.name == to_stage]
        if len(named) > 1:
            raise ValidationError(
                {
                    "to_stage": f"{len(named)} stages of this release are named {to_stage!r}: "
                    "give the stage's position instead."
                }
            )
    else:
        named = [s for s in stages if s.position == to_stage]
    if not named:
        names = ", ".join(f"{s.position}: {s.name}" for s in stages)
        raise ValidationError(
            {"to_stage": f"This release has no stage {to_stage!r}; its stages are {names}."}
        )
    target = named[0]
    if target.position >= current.position:
        where = "the current stage" if target == current else "a later stage"
        raise ValidationError(
            {
                "to_stage": f"{target.label} is {where}, not an earlier one: the "
                f"release is at {current.label}. A step back goes to an earlier "
                "stage; to go ahead, advance."
            }
        )
    if target.environment_id != current.environment_id:
        raise ValidationError(
            {
                "to_stage": f"{target.label} runs in {target.environment.name}, the "
                f"release now runs in {current.environment.name}: a step back keeps to one "
                "environment (taking the release out of it is sending it back)."
            }
        )
    return target


def step_back(
    release: Release,
    *,
    actor: Actor,
    reason: str = "",
    to_stage: StageRef | None = None,
    from_stage: StageRef | None = None,
    breaches: Sequence[dict[str, Any]] = (),
) -> Release:
    """Take traffic back to an earlier stage (the previous one unless `to_stage` names one).

    The runbooks' gradual rollback: 75 → 50 → 25 % while the issue is watched. The stage left
    and any in between become pending again, without stamps: a later advance enters them
    afresh, so their soak, sign-offs and checks start over, and the exit checklists of the
    stages run again are unticked. The stage stepped to is entered again now: its soak counts
    from now. A paused release stays paused (its soak starts when
    it resumes); a running one keeps running. `breaches` as for pause.
    """

    def apply(r: Release, now: datetime) -> list[Event]:
        current = r.current_stage
        target = _stage_to_step_to(r, to_stage)
        why = f"Stepped back to {target.label}: checked again before leaving it."
        reopened = _reenter_earlier(r, target, now, actor=actor, why=why)
        data: dict[str, Any] = {
            "from_stage": current.name,
            "to_stage": target.name,
            "traffic_percentage_before": current.traffic_percentage,
            "traffic_percentage": target.traffic_percentage,
        }
        if reopened:
            data["reopened"] = reopened
        if breaches:
            data["breaches"] = list(breaches)
        return [
            Event.record(r, EventVerb.STEPPED_BACK, actor, reason=reason, stage=target, data=data)
        ]

    return _run(release, "step_back", actor, reason, apply, from_stage=from_stage)


ACTIONS: dict[str, Callable[..., Release]] = {
    "start": start,
    "advance": advance,
    "pause": pause,
    "resume": resume,
    "rollback": rollback,
    "abort": abort,
    "step_back": step_back,
}

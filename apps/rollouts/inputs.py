"""What each transition takes from a person or CI: one table for the admin, the API and the pages.

The rule (docs/ci.md, docs/pages.md): a reason is required to pause, roll back, abort or step
back, and to force any step; it is optional to start, advance or resume. Only the gated steps
(start, advance) may be forced. Every transition accepts `from_stage`, the stage the caller saw;
a step back also `to_stage`, the earlier stage it goes to.

Here rather than in transitions.py: the Celery tick and management commands call the
transitions with reasons of their own; these are the rules for what a caller types.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release

from .transitions import ACTIONS, StageRef


@dataclass(frozen=True)
class TransitionInputs:
    """What one transition asks of its caller."""

    verb: str  # imperative, lower case, for messages: "roll back"
    reason_required: bool
    gated: bool  # the gate guards it, so a release manager may force it past a red gate
    # The caller may name the stage it goes to (`to_stage`): a step back, to an earlier one.
    takes_stage: bool = False


INPUTS: dict[str, TransitionInputs] = {
    "start": TransitionInputs("start", reason_required=False, gated=True),
    "advance": TransitionInputs("advance", reason_required=False, gated=True),
    "pause": TransitionInputs("pause", reason_required=True, gated=False),
    "resume": TransitionInputs("resume", reason_required=False, gated=False),
    "rollback": TransitionInputs("roll back", reason_required=True, gated=False),
    "abort": TransitionInputs("abort", reason_required=True, gated=False),
    "step_back": TransitionInputs("step back", reason_required=True, gated=False, takes_stage=True),
}


def needs_reason(action: str, *, force: bool = False) -> bool:
    """Whether the caller must say why: to stop, take back or cancel, and to override a gate."""
    return force or INPUTS[action].reason_required


def forced_step(release: Release) -> str:
    """What forcing a release means: its next gated step (start it if planned, else advance)."""
    return "start" if release.status == ReleaseStatus.PLANNED else "advance"


def check(
    action: str, *, reason: str, force: bool = False, to_stage: StageRef | None = None
) -> None:
    """Refuse (ValidationError, HTTP 400) inputs the table does not allow."""
    spec = INPUTS[action]
    if force and not spec.gated:
        raise ValidationError({"force": f"{action} has no gate to force."})
    if to_stage is not None and not spec.takes_stage:
        raise ValidationError(
            {"to_stage": f"Only a step back goes to a stage; {spec.verb} does not take one."}
        )
    if needs_reason(action, force=force) and not reason.strip():
        why = "override the gate" if force else spec.verb
        raise ValidationError(
            {"reason": f"Give a reason to {why}: it is recorded in the timeline."}
        )


def run(
    release: Release,
    action: str,
    *,
    actor: Actor,
    reason: str = "",
    force: bool = False,
    from_stage: StageRef | None = None,
    to_stage: StageRef | None = None,
) -> Release:
    """Check the caller's inputs against the table, then take the transition."""
    check(action, reason=reason, force=force, to_stage=to_stage)
    kwargs: dict = {"actor": actor, "reason": reason.strip(), "from_stage": from_stage}
    if INPUTS[action].gated:
        kwargs["force"] = force
    if INPUTS[action].takes_stage:
        kwargs["to_stage"] = to_stage
    return ACTIONS[action](release, **kwargs)

"""Small view models shared by the dashboard and the release page: the gate light, stage
progress, soak left, where each checklist stands, the transition buttons and one line per
timeline event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from django.urls import NoReverseMatch, reverse

from apps.checklists.choices import ChecklistKind
from apps.checklists.gate import gates_now
from apps.checklists.models import Checklist
from apps.core.durations import format_duration
from apps.core.stages import stage_label
from apps.releases.choices import BlockerKind, EventVerb, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Event, Release, Stage
from apps.rollouts.gate import Verdict
from apps.rollouts.inputs import INPUTS
from apps.rollouts.models import KeptVerdict
from apps.rollouts.transitions import FORCE_PERM, OPERATE_PERM, allowed_actions, earlier_stages

# Where on the release page (or elsewhere) each kind of blocker is resolved.
BLOCKER_TARGETS: dict[str, tuple[str, str]] = {
    BlockerKind.SOAK: ("#stages", "see the stage timeline"),
    BlockerKind.CHECKLIST: ("#checklists", "tick the open items"),
    BlockerKind.SIGNOFF: ("#signoffs", "sign-offs"),
    BlockerKind.NO_GO: ("#signoffs", "see the no-go"),
    BlockerKind.METRICS: ("#metrics", "see the metric checks"),
    BlockerKind.METRICS_PENDING: ("#metrics", "see the metric checks"),
    BlockerKind.SUCCESS_UNDECIDED: ("#metrics", "see the metric checks"),
    BlockerKind.TRAFFIC: ("#metrics", "see the traffic"),
    BlockerKind.PAUSED: ("#actions", "resume"),
}


@dataclass(frozen=True)
class Light:
    """The gate as a colour and a word, never the colour alone."""

    colour: str  # green, amber, red, grey
    word: str
    summary: str

    @property
    def symbol(self) -> str:
        return {"green": "●", "amber": "▲", "red": "■"}.get(self.colour, "○")


def _light(step: str, colour: str, blockers: list[Blocker]) -> Light:
    """The light of a gate answer from its next step, its colour and its blockers."""
    if not step:
        return Light("grey", "Finished", "The release is finished: no next step.")
    if not blockers:
        return Light("green", "Green", f"May {step} now.")
    # The line names the most important blocker; the release page lists them all.
    first, rest = most_important_first(blockers)
    summary = first.detail + (f" (and {rest})" if rest else "")
    return Light(colour, colour.capitalize(), summary)


def gate_light(verdict: Verdict) -> Light:
    """Green when the gate is open, amber when it only waits, red when something is wrong."""
    return _light(verdict.step, verdict.light, verdict.blockers)


def kept_light(kept: KeptVerdict) -> Light:
    """The same light from a kept verdict (the gate's stored answer), without evaluating."""
    blockers = [Blocker(b["kind"], b["detail"]) for b in kept.payload.get("blockers", [])]
    return _light(kept.payload.get("step") or "", kept.state, blockers)


def most_important_first(blockers: list[Blocker]) -> tuple[Blocker, str]:
    """The most severe blocker (a stable sort keeps the gate's order among equals) and the rest
    counted by kind, most severe kind first: "2 sign-offs, 1 checklist"."""
    ordered = sorted(blockers, key=lambda b: BlockerKind.rank(b.kind))
    counts: dict[str, int] = {}
    for blocker in ordered[1:]:
        counts[blocker.kind] = counts.get(blocker.kind, 0) + 1
    return ordered[0], ", ".join(BlockerKind.noun(kind, n) for kind, n in counts.items())


@dataclass(frozen=True)
class BlockerRow:
    """A gate blocker and where to go to resolve it."""

    blocker: Blocker
    href: str
    link_text: str


def _has_url(name: str) -> bool:
    try:
        reverse(name)
    except NoReverseMatch:
        return False
    return True


def blocker_rows(release: Release, verdict: Verdict) -> list[BlockerRow]:
    rows = []
    for blocker in verdict.blockers:
        href, text = BLOCKER_TARGETS.get(blocker.kind, ("", ""))
        if blocker.kind == BlockerKind.FREEZE:
            href = reverse("admin:signoffs_freezewindow_changelist")
            text = "freeze windows"
        elif blocker.kind == BlockerKind.SUCCESS_UNDECIDED:
            # A release manager decides there, with a reason (apps/checks/success.py).
            href = f"{reverse('admin:checks_successresolution_add')}?release={release.pk}"
            text = "decide, with a reason"
        elif blocker.kind == BlockerKind.INCIDENT and _has_url("pages:incidents"):
            # The incident holding the gate is another release's: the service's incident list.
            href = f"{reverse('pages:incidents')}?service={quote(release.service.slug)}"
            text = "the service's incidents"
        rows.append(BlockerRow(blocker, href, text))
    return rows


def soak_left(release: Release, stage: Stage | None, now: datetime) -> str:
    """What the current stage's soak still needs, in words."""
    if stage is None or release.status not in ReleaseStatus.active():
        return ""
    if stage.min_soak <= timedelta(0):
        return "no minimum soak"
    remaining = stage.min_soak - stage.soaked(now, release.paused_at)
    if remaining <= timedelta(0):
        return f"soaked ({format_duration(stage.min_soak)} done)"
    held = " (paused: not counting)" if release.status == ReleaseStatus.PAUSED else ""
    return f"{format_duration(remaining)} left of {format_duration(stage.min_soak)}{held}"


def stage_progress(release: Release) -> str:
    """“canary · stage 2 of 5” while the release runs."""
    stage = release.current_stage
    if stage is None or release.status not in ReleaseStatus.active():
        return ""
    where = f"stage {stage.position + 1} of {release.stage_count}"
    # Plans often name stages by their percentage: "25% · stage 3 of 5", not "25% · 25% · …".
    if stage.name.replace(" ", "") == f"{stage.traffic_percentage}%":
        return where
    return f"{stage.name} · {where}"


@dataclass(frozen=True)
class ChecklistStatus:
    """Where a release's checklist stands, in words: only one that holds the next step is red.

    `state` is gating (holds the next step now), due (open, to do now, holds nothing), not_due
    (applies later: `when` says when), past (its step is behind the release) or void (it will
    never apply: the release ended without completing).
    """

    state: str
    role: str  # what it holds, e.g. "gates leaving canary"
    when: str = ""  # for not_due, past and void: when it applies, or why it no longer does

    @property
    def red(self) -> bool:
        return self.state == "gating"


def checklist_status(checklist: Checklist, release: Release, verdict: Verdict) -> ChecklistStatus:
    """Whether the checklist holds the release's next step (the gate's rule), or when it will."""
    stage = checklist.stage
    if checklist.kind == ChecklistKind.PRE_DEPLOYMENT:
        role = "gates the start"
    elif checklist.kind == ChecklistKind.STAGE_EXIT:
        role = f"gates leaving {stage.name if stage else '?'}"
    else:
        role = "after the release"
    if gates_now(checklist, release, verdict.stage):
        return ChecklistStatus("gating", role)
    if release.status in ReleaseStatus.finished() and release.status != ReleaseStatus.COMPLETED:
        ended = release.get_status_display().lower()
        return ChecklistStatus("void", role, f"the release was {ended}: nothing here is due")
    if checklist.kind == ChecklistKind.PRE_DEPLOYMENT:
        return ChecklistStatus("past", role, "the release has started")
    if checklist.kind == ChecklistKind.STAGE_EXIT:
        current = verdict.stage
        ahead = release.status == ReleaseStatus.PLANNED or (
            current is not None and stage is not None and stage.position > current.position
        )
        name = stage.name if stage else "?"
        if ahead:
            return ChecklistStatus("not_due", role, f"applies when the release leaves {name}")
        return ChecklistStatus("past", role, f"the release has left {name}")
    if checklist.is_open:
        return ChecklistStatus("due", role)
    return ChecklistStatus("not_due", role, "opens when the release completes")


@dataclass
class Action:
    """One transition button: what it does, whether this person may press it, and why not."""

    name: str  # the transitions.ACTIONS key
    label: str
    confirm: str  # the button inside the confirmation
    enabled: bool
    why_not: str = ""
    danger: bool = False
    gated: bool = False  # the gate decides (start, advance)
    gate_red: bool = False
    may_force: bool = False
    reason_required: bool = False  # apps.rollouts.inputs; forcing always needs one
    # A step back's optional choice of an earlier stage: (position, label), the previous first.
    stage_choices: list[tuple[int, str]] = field(default_factory=list)


def transition_actions(
    release: Release, verdict: Verdict, stages: list[Stage], user: Any
) -> list[Action]:
    """The buttons the release's status allows, disabled with a reason for those who may not."""
    may_operate = user.has_perm(OPERATE_PERM)
    may_force = user.has_perm(FORCE_PERM)
    why_not = "" if may_operate else "Only release managers may start, advance, pause, resume, "
    why_not += "" if may_operate else "roll back or abort releases; your role may only look."
    current = release.current_stage
    following = next(
        (s for s in stages if current is not None and s.position == current.position + 1), None
    )
    first = stages[0] if stages else None
    actions = []
    for name in allowed_actions(release, stages):
        stage_choices: list[tuple[int, str]] = []
        if name == "start":
            where = f" at {first.label}" if first else ""
            label, confirm = "Start", f"Start{where}"
        elif name == "advance":
            if following is None:
                label, confirm = "Complete", "Complete: serve 100 %"
            else:
                label = "Advance"
                confirm = f"Advance to {following.label}"
        elif name == "pause":
            label, confirm = "Pause", f"Pause at {release.traffic_percentage} %"
        elif name == "resume":
            label, confirm = "Resume", "Resume"
        elif name == "rollback":
            label, confirm = "Roll back", "Roll back to 0 %"
        elif name == "step_back":
            earlier = earlier_stages(release, stages)
            previous = earlier[-1]
            label = "Step back"
            confirm = f"Step back from {release.traffic_percentage} %"
            stage_choices = [(s.position, s.label) for s in reversed(earlier)]
            stage_choices[0] = (previous.position, f"{stage_choices[0][1]}, the previous stage")
        else:
            label, confirm = "Abort", "Abort this release"
        gated = INPUTS[name].gated
        actions.append(
            Action(
                name=name,
                label=label,
                confirm=confirm,
                enabled=may_operate,
                why_not=why_not,
                danger=name in ("rollback", "abort"),
                gated=gated,
                gate_red=gated and not verdict.can_advance,
                may_force=gated and may_force and not verdict.can_advance,
                reason_required=INPUTS[name].reason_required,
                stage_choices=stage_choices,
            )
        )
    return actions


@dataclass
class EventRow:
    """A timeline entry with a one-line description of what changed."""

    event: Event
    what: str
    details: list[str] = field(default_factory=list)


def _reopened(data: dict) -> list[str]:
    """What a step back or a send-back unticked (transitions._reenter_earlier)."""
    return [
        f"Checklist “{c.get('checklist', '')}” ({c.get('stage', '')}) reopened: "
        f"{c.get('items', 0)} item{'' if c.get('items') == 1 else 's'} ticked before to be "
        "checked again."
        for c in data.get("reopened", [])
    ]


def describe_event(event: Event) -> EventRow:
    data = event.data or {}
    verb = event.verb
    details: list[str] = []
    if verb == EventVerb.STARTED:
        what = f"at {stage_label(data.get('stage', '?'), data.get('traffic_percentage', '?'))}"
    elif verb == EventVerb.ADVANCED:
        what = (
            f"from {data.get('from_stage', '?')} to "
            f"{stage_label(data.get('to_stage', '?'), data.get('traffic_percentage', '?'))}"
        )
        if data.get("forced"):
            what += ", past a red gate"
    elif verb == EventVerb.COMPLETED:
        what = f"from {data.get('from_stage', '?')}: serving 100 %"
    elif verb == EventVerb.STEPPED_BACK:
        before, after = data.get("traffic_percentage_before", "?"), data.get("traffic_percentage")
        what = (
            f"from {stage_label(data.get('from_stage', '?'), before)} "
            f"to {stage_label(data.get('to_stage', '?'), after)}"
        )
        details = _reopened(data)
    elif verb == EventVerb.SENT_BACK:
        what = (
            f"from {data.get('from_stage', '?')} ({data.get('from_environment', '?')}) to "
            f"{data.get('to_stage', '?')} ({data.get('to_environment', '?')}), for commit "
            f"{data.get('to_commit', '?')}"
        )
        details = _reopened(data)
    elif verb == EventVerb.ROLLED_BACK:
        before = data.get("traffic_percentage_before", "?")
        what = f"from {stage_label(data.get('stage', '?'), before)}: traffic 0 %"
    elif verb in (EventVerb.PAUSED, EventVerb.RESUMED):
        what = f"at {data.get('stage', '?')}"
    elif verb == EventVerb.GATE_OVERRIDDEN:
        what = f"for {data.get('step', '?')}"
        details = [b.get("detail", "") for b in data.get("blockers", [])]
    elif verb in (EventVerb.CHECKLIST_ITEM_DONE, EventVerb.CHECKLIST_ITEM_REOPENED):
        what = f"“{data.get('item', '')}” in {data.get('checklist', '')}"
    elif verb == EventVerb.SIGNED_OFF:
        decision = "go" if data.get("decision") == "go" else "no-go"
        what = f"{decision} on {data.get('gate', '?')}"
    elif verb == EventVerb.SIGNOFF_WITHDRAWN:
        what = f"{data.get('decision', '')} on {data.get('gate', '?')}"
    elif verb == EventVerb.SIGNOFFS_REQUESTED:
        what = f"for {data.get('gate', '?')}: asked {', '.join(data.get('asked', []))}"
    elif verb == EventVerb.ARTIFACT_CHANGED:
        what = f"from {data.get('from') or 'none'} to {data.get('to', '?')}"
    elif verb == EventVerb.CREATED:
        what = f"with stages {', '.join(data.get('stages', []))}"
    else:
        what = ""
    return EventRow(event=event, what=what, details=[d for d in details if d])

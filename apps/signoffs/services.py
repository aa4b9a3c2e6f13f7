"""Sign-off verbs: copy rules to a release, judge a gate, sign, withdraw, lapse on a new artifact.

Every change writes an Event on the release's timeline; emails are queued after commit. Asking
and reminding live in asking.py.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.actors import Actor
from apps.releases import gate_inputs
from apps.releases.choices import BlockerKind, EventVerb, ReleaseStatus
from apps.releases.models import Event, Release, Stage, sha_validator

from . import channels, messages
from .choices import Decision
from .models import (
    FreezeWindow,
    ReleaseSignOffRule,
    SignOff,
    SignOffRule,
)
from .quorum import Assessment, assess

logger = logging.getLogger(__name__)

User = get_user_model()

# The kinds of gate blocker this app produces (see apps/signoffs/gate.py).
SIGNOFF_BLOCKER_KINDS = frozenset(
    {BlockerKind.SIGNOFF, BlockerKind.NO_GO, BlockerKind.AUTHOR_UNMATCHED}
)


class SignOffRefused(PermissionDenied):
    """This person may not give this sign-off (HTTP 403); the message says why."""


@dataclass(frozen=True)
class Gate:
    """The gate a release waits at now: its start, or leaving its current stage."""

    stage: Stage | None
    key: str  # identifies the attempt and the artifact: sign-offs for another key do not count

    @property
    def label(self) -> str:
        return f"leaving stage {self.stage.name}" if self.stage else "the start"


@dataclass
class GateStatus:
    """A gate, its rule, and where its sign-offs stand."""

    release: Release
    gate: Gate
    rule: ReleaseSignOffRule
    assessment: Assessment
    # CI reported an author who matches no account, and the rule bars authors: nobody can tell
    # whether a go comes from the author, so the gate holds (apps/signoffs/gate.py).
    author_unmatched: bool = False
    history: list[SignOff] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return self.assessment.met


def current_gate(release: Release) -> Gate | None:
    """The gate the release waits at, None when it is finished."""
    sha = release.commit_sha
    if release.status == ReleaseStatus.PLANNED:
        return Gate(stage=None, key=f"start@{sha}")
    if release.status in ReleaseStatus.active() and release.current_stage is not None:
        stage = release.current_stage
        # entered_at changes when a stage is entered again, not when the release pauses.
        entered = round(stage.entered_at.timestamp() * 1_000_000) if stage.entered_at else 0
        return Gate(stage=stage, key=f"stage:{stage.pk}:{entered}@{sha}")
    return None


def rule_for(release: Release, gate: Gate) -> ReleaseSignOffRule | None:
    rules = ReleaseSignOffRule.objects.filter(release=release).prefetch_related("groups")
    if gate.stage is None:
        return rules.filter(stage__isnull=True).first()
    return rules.filter(stage=gate.stage).first()


def _memberships(user_ids: set[int], group_ids: set[int]) -> dict[int, set[int]]:
    """Which of the given groups each user belongs to now."""
    rows = User.groups.through.objects.filter(user_id__in=user_ids, group_id__in=group_ids)
    result: dict[int, set[int]] = defaultdict(set)
    for user_id, group_id in rows.values_list("user_id", "group_id"):
        result[user_id].add(group_id)
    return result


# git's "Name <address>"; the part in brackets may also be a bare username.
_NAME_AND_ADDRESS = re.compile(r"^(?P<name>[^<>]*)<(?P<address>[^<>]*)>$")


def author_keys(reported: str) -> frozenset[str]:
    """The lower-cased usernames or addresses an author reported by CI may stand for.

    "Name <address>" gives both parts: a name that is someone's username is taken to be them,
    since barring a go wrongly costs one signature while counting one wrongly is self-approval.
    """
    text = reported.strip()
    match = _NAME_AND_ADDRESS.match(text)
    parts = (match["name"], match["address"]) if match else (text,)
    return frozenset(p.strip().lower() for p in parts if p.strip())


def is_author(release: Release, user: Any) -> bool:
    """The release's author: its author user, or whoever the author CI reported matches."""
    if release.author_id is not None:
        return release.author_id == user.pk
    keys = author_keys(release.author_name)
    email = (user.email or "").strip().lower()
    return user.get_username().lower() in keys or (bool(email) and email in keys)


def reported_author_matches_someone(release: Release) -> bool:
    """Whether any account matches the author CI reported (by username or email, any case)."""
    match = Q(pk__in=[])
    for key in author_keys(release.author_name):
        match |= Q(username__iexact=key) | Q(email__iexact=key)
    return User.objects.filter(match).exists()


def gate_status(
    release: Release, *, now: datetime | None = None, with_history: bool = False
) -> GateStatus | None:
    """Where the sign-offs of the release's current gate stand; None if the gate asks none."""
    now = now or timezone.now()
    gate = current_gate(release)
    if gate is None:
        return None
    rule = rule_for(release, gate)
    if rule is None:
        return None
    groups = sorted(rule.groups.all(), key=lambda g: g.name)
    signoffs = list(
        SignOff.objects.filter(release=release, gate_key=gate.key)
        .standing()
        .select_related("signer")
        .order_by("created_at", "id")
    )
    memberships = _memberships({s.signer_id for s in signoffs}, {g.pk for g in groups})
    authors = {s.signer_id for s in signoffs if is_author(release, s.signer)}
    unmatched = (
        release.author_id is None
        and bool(author_keys(release.author_name))
        and not rule.author_may_approve
        and not authors
        and not reported_author_matches_someone(release)
    )
    assessment = assess(rule, groups, signoffs, memberships, author_ids=authors, now=now)
    status = GateStatus(
        release=release,
        gate=gate,
        rule=rule,
        assessment=assessment,
        author_unmatched=unmatched,
    )
    if with_history:
        status.history = list(
            SignOff.objects.filter(release=release).select_related("signer", "stage")
        )
    return status


def attach_rules(release: Release) -> list[ReleaseSignOffRule]:
    """Copy the plan's sign-off rules onto a new release, matching stages by their order."""
    plan_rules = list(
        SignOffRule.objects.filter(plan_id=release.plan_id)
        .select_related("stage_template")
        .prefetch_related("groups")
    )
    if not plan_rules:
        return []
    stage_of_template = {s.template_id: s for s in release.stages.all() if s.template_id}
    copies = []
    for rule in plan_rules:
        stage = stage_of_template.get(rule.stage_template_id) if rule.stage_template_id else None
        if rule.stage_template_id and stage is None:
            continue  # the template was added after the release copied its stages
        copy = ReleaseSignOffRule.objects.create(
            release=release,
            stage=stage,
            source=rule,
            quorum=rule.quorum,
            approvals_needed=rule.approvals_needed,
            valid_for=rule.valid_for,
            author_may_approve=rule.author_may_approve,
        )
        copy.groups.set(rule.groups.all())
        copies.append(copy)
    return copies


VIEW_PERM = "releases.view_release"


def may_see_signoffs(release: Release, user: Any) -> bool:
    """Whether this person may see the release's gate and sign-offs (and so try to sign).

    Anyone who may view releases, and the stakeholders the release asks: members of a group one
    of its sign-off rules names, who may hold no role. Everyone else learns nothing, not even
    which groups sign: a refusal must not show more than a reader may see.
    """
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.has_perm(VIEW_PERM):
        return True
    return ReleaseSignOffRule.objects.filter(release=release, groups__user=user).exists()


def sign_refusal(
    release: Release,
    user: Any,
    decision: str,
    *,
    in_groups: bool,
    author_may_approve: bool,
    group_names: list[str] | None = None,
) -> str:
    """Why this person may not give this decision on a gate of this release; empty when they
    may. The one rule of who signs: the sign-off page and API (why_cannot_sign), the emailed
    requests (asking) and the dashboard's "waiting for you" each read the memberships their own
    way (one query for one person, or for many) and ask this."""
    if not user.is_active:
        return "Your account is inactive."
    if not in_groups:
        return (
            f"You are not in any group this gate asks to sign ({', '.join(group_names or [])}). "
            "Ask a release manager if you should be."
        )
    if decision == Decision.GO and not author_may_approve and is_author(release, user):
        return (
            "You are this release's author, and this gate's rule does not let authors "
            "approve their own release. You may still give a no-go."
        )
    return ""


def why_cannot_sign(status: GateStatus, user: Any, decision: str) -> str:
    """Why this person may not give this decision on this gate; empty when they may."""
    groups = status.assessment.groups
    mine = user.is_active and _memberships({user.pk}, {g.pk for g in groups}).get(user.pk)
    return sign_refusal(
        status.release,
        user,
        decision,
        in_groups=bool(mine),
        author_may_approve=status.rule.author_may_approve,
        group_names=[g.name for g in groups],
    )


def lock_release(release: Release) -> Release:
    """The release row, locked until the transaction ends: signers and askers queue up."""
    return (
        Release.objects.select_for_update(of=("self",))
        .select_related("service", "environment", "current_stage", "author")
        .get(pk=release.pk)
    )


def _signer_row(signoff: SignOff) -> dict[str, Any]:
    return {
        "signer": signoff.signer.get_username(),
        "decision": signoff.decision,
        "comment": signoff.comment,
        "at": signoff.created_at.isoformat(),
    }


def _record_decision(before: GateStatus, after: GateStatus, actor: Actor) -> Event | None:
    """One Event when the gate's sign-offs turn green, naming every signer and comment."""
    if before.met or not after.met:
        return None
    gate = after.gate
    return Event.record(
        after.release,
        EventVerb.SIGNOFF_DECIDED,
        actor,
        reason=f"Go for {gate.label}: {after.rule.describe()}.",
        stage=gate.stage,
        data={
            "decision": Decision.GO,
            "gate": gate.label,
            "rule": after.rule.describe(),
            "signers": [_signer_row(s) for s in after.assessment.standing],
        },
    )


def sign(
    release: Release,
    *,
    user: Any,
    decision: str,
    comment: str = "",
    now: datetime | None = None,
) -> SignOff:
    """Record a person's go or no-go on the release's current gate, replacing their earlier one."""
    if decision not in Decision.values:
        raise ValidationError({"decision": f"Say {' or '.join(Decision.values)}."})
    comment = comment.strip()
    if decision == Decision.NO_GO and not comment:
        raise ValidationError({"comment": "A no-go needs a comment saying why."})
    actor = Actor.for_user(user)
    with transaction.atomic():
        locked = lock_release(release)
        now = now or timezone.now()
        before = gate_status(locked, now=now)
        if before is None:
            raise ValidationError(nothing_to_sign(locked))
        refusal = why_cannot_sign(before, user, decision)
        if refusal:
            raise SignOffRefused(refusal)
        replaced = list(
            SignOff.objects.standing()
            .filter(release=locked, gate_key=before.gate.key, signer=user)
            .values_list("decision", flat=True)
        )
        SignOff.objects.standing().filter(
            release=locked, gate_key=before.gate.key, signer=user
        ).update(withdrawn_at=now)
        signoff = SignOff.objects.create(
            release=locked,
            stage=before.gate.stage,
            stage_entered_at=before.gate.stage.entered_at if before.gate.stage else None,
            gate_key=before.gate.key,
            commit_sha=locked.commit_sha,
            signer=user,
            decision=decision,
            comment=comment,
            created_at=now,
        )
        data: dict[str, Any] = {"decision": decision, "gate": before.gate.label}
        if replaced:
            data["replaces"] = replaced[0]
        event = Event.record(
            locked, EventVerb.SIGNED_OFF, actor, reason=comment, stage=before.gate.stage, data=data
        )
        after = gate_status(locked, now=now)
        decided = _record_decision(before, after, actor)
        _tell(locked, [event, decided])
        channels.changed(locked, before.gate.key, because=f"event-{event.pk}")
        gate_inputs.changed(releases=[locked.pk])
    return signoff


def withdraw(release: Release, *, user: Any, now: datetime | None = None) -> SignOff:
    """Withdraw the person's standing sign-off on the current gate (a no-go stops blocking)."""
    actor = Actor.for_user(user)
    with transaction.atomic():
        locked = lock_release(release)
        now = now or timezone.now()
        before = gate_status(locked, now=now)
        gate = before.gate if before else current_gate(locked)
        signoff = (
            SignOff.objects.standing()
            .filter(release=locked, signer=user, gate_key=gate.key if gate else "")
            .first()
        )
        if signoff is None:
            raise ValidationError("You have no sign-off on this gate to withdraw.")
        signoff.withdrawn_at = now
        signoff.save(update_fields=["withdrawn_at"])
        event = Event.record(
            locked,
            EventVerb.SIGNOFF_WITHDRAWN,
            actor,
            stage=signoff.stage,
            data={"decision": signoff.decision, "gate": gate.label, "comment": signoff.comment},
        )
        decided = None
        if before is not None:
            decided = _record_decision(before, gate_status(locked, now=now), actor)
        _tell(locked, [event, decided])
        channels.changed(locked, signoff.gate_key, because=f"event-{event.pk}")
        gate_inputs.changed(releases=[locked.pk])
    return signoff


def nothing_to_sign(release: Release) -> str:
    """Why the release's current gate takes no sign-off."""
    gate = current_gate(release)
    if gate is None:
        return f"The release is {release.get_status_display().lower()}; there is no gate to sign."
    return f"The gate for {gate.label} asks for no sign-off."


def change_commit(
    release: Release,
    *,
    commit_sha: str,
    actor: Actor,
    commit_time: datetime | None = None,
    reason: str = "",
) -> tuple[Release, list[SignOff]]:
    """Point the release at a new artifact; every sign-off given on the old one lapses.

    Returns the release and the sign-offs that lapsed. The same SHA again changes nothing.
    """
    commit_sha = commit_sha.strip()
    if not commit_sha:
        raise ValidationError({"commit_sha": "Give the new commit SHA."})
    sha_validator(commit_sha)  # raises "A commit SHA is 7 to 64 hex digits."
    if not actor.may_touch_service(release.service_id):
        raise PermissionDenied(f"This token may not act on service {release.service.slug!r}.")
    with transaction.atomic():
        locked = lock_release(release)
        if locked.status in ReleaseStatus.finished():
            raise ValidationError(
                {
                    "commit_sha": f"The release is {locked.get_status_display().lower()}; "
                    "its artifact can no longer change."
                }
            )
        old = locked.commit_sha
        if old.lower() == commit_sha.lower():
            return locked, []
        now = timezone.now()
        old_gate = current_gate(locked)
        locked.commit_sha = commit_sha
        fields = ["commit_sha", "updated_at"]
        if commit_time is not None:
            locked.commit_time = commit_time
            fields.append("commit_time")
        locked.save(update_fields=fields)
        changed = Event.record(
            locked,
            EventVerb.ARTIFACT_CHANGED,
            actor,
            reason=reason,
            stage=locked.current_stage,
            data={"from": old, "to": commit_sha},
        )
        # The sign-offs' gate key names the artifact: the old ones stop counting.
        gate_inputs.changed(releases=[locked.pk])
        lapsing = list(
            SignOff.objects.standing().filter(release=locked).select_related("signer", "stage")
        )
        why = f"The artifact changed from {old or 'none'} to {commit_sha}."
        if lapsing:
            SignOff.objects.filter(pk__in=[s.pk for s in lapsing]).update(
                lapsed_at=now, lapse_reason=why
            )
            Event.record(
                locked,
                EventVerb.SIGNOFFS_LAPSED,
                actor,
                reason=why + " Sign-offs given on the old one no longer count.",
                stage=locked.current_stage,
                data={
                    "from": old,
                    "to": commit_sha,
                    "signers": [
                        {
                            "signer": s.signer.get_username(),
                            "decision": s.decision,
                            "stage": s.stage.name if s.stage else "start",
                        }
                        for s in lapsing
                    ],
                },
            )
        if old_gate is not None:
            # Requests shown elsewhere (Slack) for the old artifact say it changed.
            channels.changed(locked, old_gate.key, because=f"event-{changed.pk}")
    locked.refresh_from_db()
    return locked, lapsing


# --- freeze windows --------------------------------------------------------------------------


def active_freezes(release: Release, now: datetime) -> list[tuple[FreezeWindow, datetime]]:
    """The freeze windows holding this release's service and environment at `now`, with ends:
    the environment its next step enters (a plan may go staging, then production: a production
    freeze holds the step into production, not the staging stages before it)."""
    windows = FreezeWindow.objects.covering(release.service_id, release.step_environment_id())
    found = []
    for window in windows.possibly_active(now).order_by("name"):
        until = window.active_until(now)
        if until is not None:
            found.append((window, until))
    return found


# --- notifications ---------------------------------------------------------------------------


def _worth_telling(event: Event) -> bool:
    """No-gos and decisions go to the service's notification list; plain gos do not."""
    if event.verb == EventVerb.SIGNOFF_DECIDED:
        return True
    return event.verb == EventVerb.SIGNED_OFF and event.data.get("decision") == Decision.NO_GO


def _tell(release: Release, events: list[Event | None]) -> None:
    """Write the no-go and decision emails into the sign-off's own transaction."""
    worth = [e for e in events if e is not None and _worth_telling(e)]
    if worth:
        messages.tell(release, worth)

"""Asking for sign-offs by email and reminding: once per person per gate, once per period.

Each email is claimed by a row before it is sent (a request row per person and gate attempt, a
SignerReminder row per person), so a task or a sweep that runs twice, or twice at once, never
sends twice.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.actors import Actor
from apps.jobs.runner import job
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Event, Release

from . import channels, messages
from .choices import Decision
from .models import SignerReminder, SignOffRequest
from .services import (
    GateStatus,
    gate_status,
    lock_release,
    nothing_to_sign,
    sign_refusal,
)

User = get_user_model()


def reminder_period() -> timedelta:
    """How long a person waits between two reminders (SIGNOFF_REMINDER_HOURS)."""
    return timedelta(hours=settings.SIGNOFF_REMINDER_HOURS)


def _signers_to_ask(status: GateStatus) -> list[Any]:
    """Active members of the rule's groups with an email who have not signed this attempt."""
    signed = {s.signer_id for s in status.assessment.standing}
    users = (
        User.objects.filter(is_active=True, groups__in=status.assessment.groups)
        .exclude(pk__in=signed)
        .exclude(email="")
        .distinct()
        .order_by("pk")
    )
    # Only those whose go would count: asking the author for one would only confuse.
    return [
        u
        for u in users
        if not sign_refusal(
            status.release,
            u,
            Decision.GO,
            in_groups=True,  # the query above took only the rule's groups
            author_may_approve=status.rule.author_may_approve,
        )
    ]


def request_signoffs(
    release: Release,
    *,
    actor: Actor,
    early: bool = False,
    blockers: list[dict[str, str]] | None = None,
    now: datetime | None = None,
) -> list[SignOffRequest]:
    """Ask each member of the gate's groups to sign, once per gate attempt; returns new requests.

    `blockers` is the gate's state to show in the email. Emails go out after commit, each
    claimed by its request row so that running this twice never sends twice.
    """
    with transaction.atomic():
        locked = lock_release(release)
        now = now or timezone.now()
        status = gate_status(locked, now=now)
        if status is None:
            raise ValidationError(nothing_to_sign(locked))
        if status.assessment.quorum_reached:
            return []
        asked = set(
            SignOffRequest.objects.filter(release=locked, gate_key=status.gate.key).values_list(
                "user_id", flat=True
            )
        )
        users = [u for u in _signers_to_ask(status) if u.pk not in asked]
        if not users:
            return []
        SignOffRequest.objects.bulk_create(
            [
                SignOffRequest(
                    release=locked,
                    stage=status.gate.stage,
                    gate_key=status.gate.key,
                    user=u,
                    requested_at=now,
                    requested_by=actor.name,
                    early=early,
                    gate_blockers=blockers or [],
                )
                for u in users
            ]
        )
        created = list(
            SignOffRequest.objects.filter(release=locked, gate_key=status.gate.key, user__in=users)
            .select_related("user")
            .order_by("pk")
        )
        Event.record(
            locked,
            EventVerb.SIGNOFFS_REQUESTED,
            actor,
            reason="Asked early by a release manager."
            if early
            else "The gate's other conditions are met.",
            stage=status.gate.stage,
            data={"gate": status.gate.label, "asked": [u.get_username() for u in users]},
        )
        messages.ask(created)
        channels.ask(status, created)
    return created


def pending_for(requests: list[SignOffRequest], now: datetime) -> list[SignOffRequest]:
    """The requests whose gate is still current, still short of its quorum, and unsigned by
    the person asked."""
    statuses: dict[int, GateStatus | None] = {}
    keep = []
    for request in requests:
        release = request.release
        if release.pk not in statuses:
            statuses[release.pk] = gate_status(release, now=now)
        status = statuses[release.pk]
        if status is None or status.gate.key != request.gate_key:
            continue
        if status.assessment.quorum_reached:
            continue
        if any(s.signer_id == request.user_id for s in status.assessment.standing):
            continue
        keep.append(request)
    return keep


def remind_due(now: datetime | None = None) -> dict[int, list[int]]:
    """Claim the reminders due now: at most one per person per reminder period.

    Returns {user id: [request ids]} of the reminders claimed; each is an outbox message
    written with its claim. Safe to run twice at once: the person's SignerReminder row is
    claimed with a conditional UPDATE, so only one run sends.
    """
    now = now or timezone.now()
    cutoff = now - reminder_period()
    due = list(
        SignOffRequest.objects.filter(
            sent_at__lte=cutoff,
            release__status__in=[ReleaseStatus.PLANNED, ReleaseStatus.IN_PROGRESS],
        )
        .filter(Q(reminded_at__isnull=True) | Q(reminded_at__lte=cutoff))
        .select_related("release__current_stage", "release__service")
        .order_by("user_id", "pk")
    )
    claimed: dict[int, list[int]] = {}
    with job("signoffs.remind") as run:
        # One item per release: a release whose gate cannot be read reminds nobody of itself,
        # and everyone's other gates are still reminded.
        by_release: dict[int, list[SignOffRequest]] = defaultdict(list)
        for request in due:
            by_release[request.release_id].append(request)
        pending: list[SignOffRequest] = []
        for requests in by_release.values():
            # No savepoint: reading the gate writes nothing that a failure would leave behind.
            with run.item(requests[0].release, atomic=False):
                pending.extend(pending_for(requests, now))
        by_user: dict[int, list[int]] = defaultdict(list)
        for request in sorted(pending, key=lambda r: (r.user_id, r.pk)):
            by_user[request.user_id].append(request.pk)
        emails = dict(
            User.objects.filter(pk__in=by_user, is_active=True)
            .exclude(email="")
            .values_list("pk", "email")
        )
        for user_id, request_ids in by_user.items():
            # The item's savepoint is the claim's transaction.
            if user_id not in emails:
                continue  # nobody to write to: no longer active, or no address
            with run.item(kind="auth.user", pk=user_id):
                SignerReminder.objects.get_or_create(user_id=user_id)
                won = (
                    SignerReminder.objects.filter(user_id=user_id)
                    .filter(Q(last_sent_at__isnull=True) | Q(last_sent_at__lte=cutoff))
                    .update(last_sent_at=now)
                )
                if not won:
                    continue
                SignOffRequest.objects.filter(pk__in=request_ids).update(
                    reminded_at=now, reminders_sent=F("reminders_sent") + 1
                )
                messages.remind(user_id, emails[user_id], request_ids, at=now.isoformat())
                claimed[user_id] = request_ids
    return claimed

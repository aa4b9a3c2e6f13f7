"""The scheduled tick: what rolloutdesk does by itself every minute.

Auto-advance, and asking for sign-offs once a gate waits only for them: both read the gate,
which only rollouts may (the sign-offs app sits below it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, OuterRef, Q, Value
from django.utils import timezone

from apps.core.actors import Actor
from apps.jobs.runner import job
from apps.releases import gate_inputs
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release
from apps.signoffs import asking
from apps.signoffs import services as signoffs
from apps.signoffs.models import ReleaseSignOffRule, SignOffRequest

from . import gate, transitions

logger = logging.getLogger(__name__)


@dataclass
class TickReport:
    """What one tick looked at and did."""

    examined: int = 0
    advanced: list[int] = field(default_factory=list)
    held: int = 0
    skipped: int = 0


def auto_advance_due() -> TickReport:
    """Advance every running release whose stage auto-advances and whose gate is green.

    Safe to run twice at once: advance() locks the row and refuses when the release has moved
    since it was read, so two workers never advance the same release twice. Each release is one
    item of the job: one whose gate or advance fails is recorded and the others go on.
    """
    now = timezone.now()
    report = TickReport()
    actor = Actor.system("auto-advance")
    candidates = (
        Release.objects.in_progress()
        .filter(current_stage__auto_advance=True)
        # Cheap pre-filter in SQL: a stage still inside its soak cannot pass the gate.
        .filter(
            current_stage__entered_at__lte=ExpressionWrapper(
                Value(now) - F("current_stage__min_soak"), output_field=DateTimeField()
            )
        )
        .select_related("service", "current_stage")
        .order_by("pk")
    )
    # An advance changes what its service's other releases' gates see: recompute them once.
    with job("rollouts.auto_advance") as run, gate_inputs.gathered():
        for release in candidates.iterator(chunk_size=500):
            report.examined += 1
            # No savepoint of its own: the gate only reads, and advance() writes in one
            # transaction; a savepoint per release would cost every tick two queries each.
            with run.item(release, atomic=False):
                if not gate.evaluate(release, now=now).can_advance:
                    report.held += 1
                    continue
                try:
                    transitions.advance(
                        release, actor=actor, reason="Gate green; stage auto-advances."
                    )
                except transitions.TransitionError as exc:
                    report.skipped += 1
                    logger.info("Auto-advance of release %s skipped: %s", release.pk, exc.message)
                else:
                    report.advanced.append(release.pk)
    return report


def request_signoffs_when_ready(now: datetime | None = None) -> int:
    """Ask for sign-offs on every gate that waits only for them; returns how many gates asked.

    Releases already asked (automatically or early) for their current gate attempt are skipped
    cheaply; the request rows make a second run, or two at once, ask each person only once.
    Each release is one item of the job: one that fails is recorded and the others are asked.
    """
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

"""Success criteria and the power of relative ones: what the gate and the pages say about them.

A success criterion holds the gate until the release is significantly better than its reference
(the sequential test, apps/checks/sequential.py, at the criterion's alpha and minimum effect).
While it is not, the gate says how far it is ("not yet significant: n samples, p = …, about N
more needed at today's traffic"); once its decision window has passed still inconclusive, it
stops waiting and asks a person: a release manager resolves it with a reason (`resolve`), the
decision and the evidence it was made on kept in a SuccessResolution and on the timeline.

`outlook` turns a sequential result's `more_needed` into time at the traffic the stage has seen,
and says whether the soak (or the decision window) is long enough: the power figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.core.actors import Actor
from apps.core.durations import format_duration
from apps.releases import gate_inputs
from apps.releases.choices import BlockerKind, EventVerb, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Event, Release, Stage

from .choices import MetricKind, Verdict
from .models import CheckResult, MetricCriterion, SuccessResolution
from .selection import stage_criteria


@dataclass(frozen=True)
class Outlook:
    """How long a sequential criterion still needs at today's traffic, and whether it has it."""

    more: int  # samples (requests, for a rate) still needed
    time: timedelta | None  # at the stage's traffic so far; None: no traffic yet
    left: timedelta | None  # of the soak (guardrail) or decision window (success); None: no end
    noun: str

    @property
    def long_enough(self) -> bool | None:
        if self.time is None or self.left is None:
            return None
        return self.time <= self.left

    def text(self) -> str:
        plural = "s" if self.more != 1 else ""
        words = f"about {self.more:,} more {self.noun}{plural} needed at today's traffic"
        if self.time is None:
            return words + " (no traffic yet to tell how long)"
        words += f", about {format_duration(self.time)}"
        if self.left is not None:
            verdict = "long enough" if self.long_enough else "not long enough"
            words += f"; {format_duration(self.left)} left: {verdict}"
        return words


def decision_deadline(criterion: MetricCriterion, stage: Stage) -> datetime | None:
    """When a success criterion stops waiting for significance and asks a person."""
    if stage.entered_at is None:
        return None
    return stage.entered_at + criterion.decision_window


def decision_deadlines(release: Release, stage: Stage) -> list[datetime]:
    """When the stage's success criteria stop waiting (for the kept verdict's next change)."""
    return [
        deadline
        for criterion in stage_criteria(release, stage)
        if criterion.success
        and not criterion.dry_run
        and (deadline := decision_deadline(criterion, stage)) is not None
    ]


def outlook(
    criterion: MetricCriterion, result: CheckResult | None, release: Release, now: datetime
) -> Outlook | None:
    """The time a sequential criterion's `more_needed` means at the stage's traffic so far."""
    stage = release.current_stage
    if result is None or result.more_needed is None or stage is None or stage.entered_at is None:
        return None
    if result.more_needed == 0:
        return None
    ran = stage.soaked(now, release.paused_at)
    rate = result.samples / ran.total_seconds() if ran > timedelta(0) else 0.0
    time = timedelta(seconds=result.more_needed / rate) if rate > 0 else None
    if criterion.success:
        deadline = decision_deadline(criterion, stage)
        left = max(timedelta(0), deadline - now) if deadline else None
    else:
        left = max(timedelta(0), stage.min_soak - ran) if stage.min_soak else None
    noun = "request" if criterion.metric.kind == MetricKind.RATIO else "sample"
    return Outlook(more=result.more_needed, time=time, left=left, noun=noun)


def passed(release: Release, stage: Stage, criterion: MetricCriterion) -> bool:
    """Has the criterion been significantly better at any look since the stage began? An
    always-valid test may be stopped at the first crossing: a later look does not undo it."""
    return CheckResult.objects.filter(
        release_id=release.pk,
        criterion_id=criterion.pk,
        verdict=Verdict.PASS,
        at__gte=stage.entered_at,
    ).exists()


def success_blockers(
    release: Release,
    stage: Stage,
    criterion: MetricCriterion,
    latest: CheckResult | None,
    now: datetime,
) -> list[Blocker]:
    """Nothing once proven or decided by a person; waiting (amber) within the decision window,
    a red blocker for a release manager after it."""
    if stage.entered_at is None or passed(release, stage, criterion):
        return []
    if SuccessResolution.objects.filter(stage=stage, criterion=criterion).exists():
        return []
    label = f"Metric check {criterion.label}"
    if latest is None:
        state = "not evaluated yet"
    elif latest.p_value is not None and latest.more_needed is not None:
        noun = "request" if criterion.metric.kind == MetricKind.RATIO else "sample"
        state = (
            f"not yet significant: {latest.samples:,} {noun}{'s' if latest.samples != 1 else ''}"
            f", p = {latest.p_value:.3g}"
        )
        seen = outlook(criterion, latest, release, now)
        if seen is not None:
            state += f", {seen.text()}"
    else:
        state = latest.detail or latest.get_level_display().lower()
    deadline = decision_deadline(criterion, stage)
    if deadline is not None and now >= deadline:
        return [
            Blocker(
                BlockerKind.SUCCESS_UNDECIDED,
                f"{label} is still inconclusive after its "
                f"{format_duration(criterion.decision_window)} decision window ({state}). "
                "A release manager decides, with a reason (admin: Success decisions), or rolls "
                "the release back.",
            )
        ]
    return [Blocker(BlockerKind.METRICS_PENDING, f"{label}: {state}.")]


def undecided(release: Release, now: datetime) -> list[MetricCriterion]:
    """The success criteria of the current stage whose window ended inconclusive, undecided."""
    stage = release.current_stage
    if release.status != ReleaseStatus.IN_PROGRESS or stage is None or stage.entered_at is None:
        return []
    found = []
    for criterion in stage_criteria(release, stage):
        if not criterion.success or criterion.dry_run:
            continue
        deadline = decision_deadline(criterion, stage)
        if deadline is None or now < deadline or passed(release, stage, criterion):
            continue
        if not SuccessResolution.objects.filter(stage=stage, criterion=criterion).exists():
            found.append(criterion)
    return found


def resolve(
    release: Release,
    criterion: MetricCriterion,
    *,
    actor: Actor,
    reason: str,
    now: datetime | None = None,
) -> SuccessResolution:
    """A release manager's decision on an inconclusive success criterion: the gate stops holding
    on it for the current stage. The reason and the evidence are kept; an Event says so."""
    from django.utils import timezone

    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the release may go on without significance."})
    with transaction.atomic():
        release = Release.objects.select_for_update(of=("self",)).get(pk=release.pk)
        stage = release.current_stage
        if criterion not in undecided(release, now):
            raise ValidationError(
                {
                    "criterion": f"{criterion.label} is not an undecided success criterion of "
                    f"release {release.version}'s current stage (proven, decided already, not "
                    "past its decision window, or not watching this stage)."
                }
            )
        latest = (
            CheckResult.objects.filter(release_id=release.pk, criterion_id=criterion.pk)
            .order_by("-at", "-id")
            .first()
        )
        evidence = latest.detail if latest is not None else "never evaluated"
        try:
            with transaction.atomic():
                resolution = SuccessResolution.objects.create(
                    release=release,
                    stage=stage,
                    criterion=criterion,
                    decided_by=actor.user,
                    actor=actor.name,
                    reason=reason,
                    evidence=evidence,
                    created_at=now,
                )
        except IntegrityError as exc:  # two managers at once: the first one decided
            raise ValidationError({"criterion": "Someone decided it a moment ago."}) from exc
        gate_inputs.changed(releases=[release.pk])
        Event.record(
            release,
            EventVerb.GATE_OVERRIDDEN,
            actor,
            reason=reason,
            stage=stage,
            data={
                "success_criterion": criterion.pk,
                "criterion": criterion.label,
                "evidence": evidence,
                "p_value": latest.p_value if latest is not None else None,
                "samples": latest.samples if latest is not None else 0,
            },
        )
    return resolution

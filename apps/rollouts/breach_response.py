"""Responding to metric breaches: evaluate in-progress releases' criteria and act on them.

A criterion whose critical breach is sustained pauses, steps back or rolls back its release
through the transitions module (which refuses a release that moved since we read it, so two
ticks at once roll back once); a warning may step back too. A step back is taken once per breach
episode (the timeline's step-back event names the episodes it answered), so a breach still
measured on the next tick does not take traffic down a second time; a new breach at the lower
stage steps back again ("75 → 50 → 25"). A warning, or a critical breach whose action is
"notify", emails the service's list once per breach episode (the notification row is claimed,
so two ticks send one email).
Dry-run criteria are evaluated and recorded, never acted on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.checks import claims, recording
from apps.checks import messages as check_messages
from apps.checks.choices import CriticalAction, RunTrigger, Verdict, WarningAction
from apps.checks.models import CheckResult
from apps.core.actors import Actor
from apps.incidents import lifecycle as incidents
from apps.jobs.runner import Run, job
from apps.releases import gate_inputs
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Event, Release

from . import transitions

logger = logging.getLogger(__name__)

ACTOR_NAME = "metric-checks"


@dataclass
class ChecksReport:
    """What one round of checks evaluated and did."""

    releases: int = 0
    results: int = 0
    paused: list[int] = field(default_factory=list)
    rolled_back: list[int] = field(default_factory=list)
    stepped_back: list[int] = field(default_factory=list)
    notified: int = 0
    refused: int = 0


def describe(result: CheckResult) -> str:
    """The criterion, the value and the threshold, as the reason of a transition."""
    criterion = result.criterion
    metric = criterion.metric
    level = result.threshold_level
    if result.reference_value is not None and result.delta is not None:
        text = (
            f"{criterion.label}: {metric.format(result.value)} against "
            f"{criterion.reference} {metric.format(result.reference_value)}, worse by "
            f"{criterion.format_threshold(result.delta)} ({level} threshold "
            f"{criterion.comparator} {criterion.format_threshold(result.threshold)})"
        )
    else:
        text = (
            f"{criterion.label}: measured {metric.format(result.value)} ({level} threshold "
            f"{criterion.comparator} {criterion.format_threshold(result.threshold)})"
        )
    if criterion.for_window:
        text += f" for {int(criterion.for_window.total_seconds() // 60)} min"
    if criterion.consecutive > 1:
        text += f", {criterion.consecutive} evaluations in a row"
    if result.p_value is not None:
        text += f", p = {result.p_value:.3g}"
    return f"Metric check failed: {text}."


def evidence(result: CheckResult) -> dict[str, Any]:
    """The same breach as data, for the transition's event (CI reads it from the events API)."""
    criterion = result.criterion
    return {
        "criterion": criterion.label,
        "criterion_id": criterion.pk,
        "metric": criterion.metric.key,
        "level": result.threshold_level,
        "value": result.value,
        "comparator": criterion.comparator,
        "threshold": result.threshold,
        "reference": criterion.reference,
        "reference_value": result.reference_value,
        "delta": result.delta,
        "p_value": result.p_value,
        "check_result_id": result.pk,
        # What the criterion is set to do at this level, and the breach episode it is part of:
        # a step back is taken once per episode (`_answered_episodes`).
        "action": _action_of(result),
        "episode": result.episode,
    }


def _action_of(result: CheckResult) -> str:
    criterion = result.criterion
    return criterion.on_critical if result.verdict == Verdict.FAIL else criterion.on_warning


def _steps_back(result: CheckResult) -> bool:
    return _action_of(result) == CriticalAction.STEP_BACK and result.verdict in (
        Verdict.WARN,
        Verdict.FAIL,
    )


def _answered_episodes(release: Release) -> set[tuple[int, int]]:
    """(criterion id, episode) of every breach a step back (or the pause taken instead, at the
    first stage) already answered: the timeline holds them in its events' data.breaches.

    Read back from the events rather than claimed apart: the event is written in the step's own
    transaction, so it exists exactly when the step happened.
    """
    answered = set()
    events = Event.objects.filter(
        release=release, verb__in=(EventVerb.STEPPED_BACK, EventVerb.PAUSED)
    ).values_list("data", flat=True)
    for data in events:
        for breach in (data or {}).get("breaches", []):
            if breach.get("action") == CriticalAction.STEP_BACK:
                answered.add((breach.get("criterion_id"), breach.get("episode")))
    return answered


def open_breach_incident(release: Release, result: CheckResult) -> None:
    """A critical breach opens its release's incident, or adds this criterion to its timeline.

    Called once per failing criterion: the incident is per release, so two criteria breaching
    in one tick make one incident (one page of the first level), not two.
    """
    try:
        incidents.open_or_update_for_breach(
            release,
            criterion_id=result.criterion_id,
            criterion_label=result.label,
            detail=describe(result),
            episode=result.episode,
            # The runbook's word for this failure ("session isolation: critical, page");
            # blank: the INCIDENTS_BREACH_SEVERITY setting. The metric is a routing label.
            severity=result.criterion.incident_severity,
            metric=result.criterion.metric.key,
        )
    except Exception:  # the breach's own action (pause, roll back) must not wait on the incident
        logger.exception("Could not open the incident for release %s's breach", release.pk)


def act(outcome: recording.Outcome, report: ChecksReport) -> None:
    """Pause, step back, roll back or notify for one release's results.

    At most one transition per release and tick, the most severe first: roll back, a critical
    step back, pause, a warning's step back.
    """
    release = outcome.release
    live = [r for r in outcome.results if not r.dry_run and r.criterion is not None]
    failing = [r for r in live if r.verdict == Verdict.FAIL]
    for result in failing:
        open_breach_incident(release, result)
    actor = Actor.system(ACTOR_NAME)
    stepping = [r for r in live if _steps_back(r)]
    if stepping:
        answered = _answered_episodes(release)
        stepping = [r for r in stepping if (r.criterion_id, r.episode) not in answered]
    critical_step = any(r.verdict == Verdict.FAIL for r in stepping)
    order = [
        (
            CriticalAction.ROLLBACK,
            [r for r in failing if r.criterion.on_critical == CriticalAction.ROLLBACK],
        ),
        (CriticalAction.STEP_BACK, stepping if critical_step else []),
        (
            CriticalAction.PAUSE,
            [r for r in failing if r.criterion.on_critical == CriticalAction.PAUSE],
        ),
        (CriticalAction.STEP_BACK, stepping),
    ]
    for action, triggering in order:
        if triggering:
            # Taken or refused (someone moved the release first), that is this tick's answer;
            # the transition's own notification tells the service's list.
            _transition(outcome, action, triggering, actor, report)
            return
    to_notify = [
        r
        for r in live
        if (r.verdict == Verdict.WARN and r.criterion.on_warning == WarningAction.NOTIFY)
        or (r.verdict == Verdict.FAIL and r.criterion.on_critical == CriticalAction.NOTIFY)
    ]
    for result in to_notify:
        notification = claims.claim_notification(result)
        if notification is None:
            continue
        report.notified += 1
        check_messages.tell(notification, release)
    if to_notify:
        recording.record_action(outcome.run, f"notify: {', '.join(r.label for r in to_notify)}")


def _transition(
    outcome: recording.Outcome,
    action: str,
    triggering: list[CheckResult],
    actor: Actor,
    report: ChecksReport,
) -> None:
    """Take one release's transition for the triggering results."""
    release = outcome.release
    reason = " ".join(describe(r) for r in triggering)
    breaches = [evidence(r) for r in triggering]
    done = {
        CriticalAction.ROLLBACK: (transitions.rollback, report.rolled_back),
        CriticalAction.PAUSE: (transitions.pause, report.paused),
        CriticalAction.STEP_BACK: (transitions.step_back, report.stepped_back),
    }
    noted = action
    if action == CriticalAction.STEP_BACK and not transitions.can_step_back(release):
        # Nowhere lower to go: hold the release where it is rather than do nothing.
        action = CriticalAction.PAUSE
        noted = "pause (no earlier stage to step back to)"
        reason += " No earlier stage to step back to: paused instead."
    verb, taken = done[action]
    try:
        verb(release, actor=actor, reason=reason, breaches=breaches)
    except transitions.TransitionError as exc:
        # Another tick or a person moved the release since we read it: they acted first.
        report.refused += 1
        logger.info("Metric checks left release %s alone: %s", release.pk, exc.message)
        return
    taken.append(release.pk)
    recording.record_action(outcome.run, f"{noted}: {triggering[0].label}")


def needs_action(outcome: recording.Outcome) -> bool:
    """Whether act() has anything to do: a live warning or failure (else it reads nothing)."""
    return any(
        r.verdict in (Verdict.WARN, Verdict.FAIL)
        for r in outcome.results
        if not r.dry_run and r.criterion is not None
    )


def evaluate_and_act(
    releases: list[Release],
    *,
    now: datetime | None = None,
    trigger: str = RunTrigger.TICK,
    run: Run | None = None,
) -> ChecksReport:
    """Evaluate the given releases' criteria, record the results and act on them.

    With a job `run` (the tick), each release is acted on in its own savepoint: one whose
    pause, rollback, incident or notification fails is recorded and the others are acted on.
    Releases with nothing to act on take no savepoint, so a quiet tick costs no more queries.
    """
    report = ChecksReport()
    outcomes = recording.evaluate_releases(
        releases, now=now or timezone.now(), trigger=trigger, run=run
    )
    report.releases = len(outcomes)
    # Each rollback, pause and incident commits on its own; their kept verdicts are recomputed
    # once, after the last (an incident touches every release of its service).
    with gate_inputs.gathered():
        for outcome in outcomes:
            report.results += len(outcome.results)
            if run is None:
                act(outcome, report)
            elif needs_action(outcome):
                with run.item(outcome.release):
                    act(outcome, report)
    return report


def run_checks(*, now: datetime | None = None) -> ChecksReport:
    """The tick's part: every in-progress release, once per tick slot."""
    with job("rollouts.checks") as run:
        releases = list(
            Release.objects.in_progress()
            .select_related("service", "environment", "current_stage")
            .order_by("pk")
        )
        return evaluate_and_act(releases, now=now, run=run)


def run_checks_now(release: Release) -> ChecksReport:
    """A person asked for the checks of one release now (admin action)."""
    release = Release.objects.select_related("service", "environment", "current_stage").get(
        pk=release.pk
    )
    if release.status != ReleaseStatus.IN_PROGRESS:
        return ChecksReport()
    return evaluate_and_act([release], trigger=RunTrigger.MANUAL)

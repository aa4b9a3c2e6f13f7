"""Gate checks of the metric checks: criteria passed over the soak, and traffic soaked.

A running release may leave its stage only when every (non dry-run) criterion watching the stage
has passed at least once over the soak window with no warn or fail in it, every success
criterion has proven the release better (or a release manager decided after its window,
apps/checks/success.py), and the stage has served its minimum number of requests. Registered
with the gate in apps.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.core.durations import format_duration
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Release, Stage

from .choices import Reference, Verdict
from .models import CheckResult, MetricCriterion
from .providers import ProviderError
from .selection import stage_criteria
from .standing import standings, traffic_served
from .success import outlook, success_blockers


def check_metrics(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """One blocker per criterion failing, warning or without a pass during the stage's soak."""
    if release.status != ReleaseStatus.IN_PROGRESS or stage is None:
        return []
    criteria = [c for c in stage_criteria(release, stage) if not c.dry_run]
    blockers = []
    for standing in standings(release, stage, criteria, now):
        criterion, latest = standing.criterion, standing.latest
        if criterion.success:
            # Not "passed over the soak": proven once since the stage began, or decided.
            blockers.extend(success_blockers(release, stage, criterion, latest, now))
            continue
        power = outlook(criterion, latest, release, now)
        if standing.ok:
            if power is not None and stage.soaked(now, release.paused_at) < stage.min_soak:
                # Only while the soak holds the gate anyway: says whether the soak can tell.
                blockers.append(
                    Blocker(
                        BlockerKind.METRICS_PENDING,
                        f"Metric check {criterion.label}: no significant regression so far; to "
                        f"detect its minimum effect, {power.text()}.",
                    )
                )
            continue
        if standing.bad:
            what = (
                f"warned or failed {standing.bad} time{'s' if standing.bad != 1 else ''} "
                "during the soak"
            )
            blockers.append(
                Blocker(
                    BlockerKind.METRICS,
                    f"Metric check {_rules(criterion)} {what} ({_latest_text(latest)}).",
                )
            )
            continue
        # Nothing bad yet (a fresh stage, or data still arriving) only asks for time: its own
        # kind, so the pages show it pending (amber), not red, after every healthy advance.
        due = first_evaluation_due(stage, latest, now)
        if latest is None:
            when = f"not evaluated yet; the first evaluation is due {_due_text(due, now)}"
        else:
            when = f"no pass yet ({_latest_text(latest)}); the next evaluation is due " + _due_text(
                due, now
            )
        if power is not None:
            # A sequential guardrail: how long until a regression of its minimum effect shows.
            when += f"; to detect its minimum effect, {power.text()}"
        blockers.append(
            Blocker(
                BlockerKind.METRICS_PENDING,
                f"Metric check {criterion.label} is pending: {when}.",
            )
        )
    return blockers


def first_evaluation_due(stage: Stage, latest: CheckResult | None, now: datetime) -> datetime:
    """When the tick next evaluates the criterion: one slot after its latest result, or after the
    stage began when it has none (the tick's cadence, CHECKS_TICK_SECONDS)."""
    slot = timedelta(seconds=settings.CHECKS_TICK_SECONDS)
    since = latest.at if latest is not None else (stage.entered_at or now)
    return since + slot


def _due_text(due: datetime, now: datetime) -> str:
    if due >= now:
        return f"in about {format_duration(due - now)} ({timezone.localtime(due):%H:%M})"
    # Overdue by more than a slot: the worker or beat is not running, say so.
    return (
        f"since {timezone.localtime(due):%H:%M} ({format_duration(now - due)} ago): "
        "is the worker running?"
    )


def _rules(criterion: MetricCriterion) -> str:
    """The criterion with each threshold it has: a warning is not read as the critical rule."""
    if criterion.warning_threshold is None or criterion.critical_threshold is None:
        return criterion.label
    subject = criterion.metric.key
    if criterion.reference != Reference.ABSOLUTE:
        subject += f" vs {criterion.reference}"
    comparator = criterion.comparator
    warning = criterion.format_threshold(criterion.warning_threshold)
    critical = criterion.format_threshold(criterion.critical_threshold)
    return f"{subject} (warning {comparator} {warning}, critical {comparator} {critical})"


def _latest_text(latest: CheckResult | None) -> str:
    """The latest result with the rule that actually fired: a warning names the warning
    threshold, not the criterion's critical one."""
    if latest is None:
        return "not evaluated yet"
    criterion = latest.criterion
    verdict = latest.get_verdict_display().lower()
    if latest.value is None:
        return f"latest {verdict}" + (f" — {latest.detail}" if latest.detail else "")
    text = f"latest {verdict}, {criterion.metric.format(latest.value)}"
    if latest.threshold is not None and latest.verdict in (Verdict.WARN, Verdict.FAIL):
        text += f" against the {latest.threshold_level} threshold {criterion.comparator} "
        text += criterion.format_threshold(latest.threshold)
    return text


def check_traffic(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """A stage with a minimum number of requests must have served them; shows progress and ETA."""
    if release.status != ReleaseStatus.IN_PROGRESS or stage is None or not stage.min_requests:
        return []
    try:
        served = traffic_served(release, stage, now)
    except ProviderError as exc:
        # Not "no traffic metric": the metric is there, its source is down or refuses the query.
        return [
            Blocker(
                BlockerKind.TRAFFIC,
                f"Stage {stage.name} needs {stage.min_requests:,} requests, but the traffic "
                f"metric's source could not answer: {exc}",
            )
        ]
    if served is None:
        return [
            Blocker(
                BlockerKind.TRAFFIC,
                f"Stage {stage.name} needs {stage.min_requests:,} requests, but no traffic "
                "metric is defined (mark one metric as counting traffic).",
            )
        ]
    if served >= stage.min_requests:
        return []
    soaked = stage.soaked(now, release.paused_at)
    time_left = max(timedelta(0), stage.min_soak - soaked)
    text = f"Stage {stage.name} has served {int(served):,} of {stage.min_requests:,} requests"
    if served > 0 and soaked > timedelta(0):
        rate = served / soaked.total_seconds()
        traffic_left = timedelta(seconds=(stage.min_requests - served) / rate)
        eta = max(traffic_left, time_left)
        text += f"; at the current rate it may advance in about {format_duration(eta)}"
        text += f" (around {(now + eta):%Y-%m-%d %H:%M %Z})."
    else:
        text += "; no traffic counted yet."
    return [Blocker(BlockerKind.TRAFFIC, text)]

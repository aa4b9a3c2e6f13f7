"""Gate checks of the metric checks: criteria passed over the soak, and traffic soaked.

A running release may leave its stage only when every (non dry-run) criterion watching the stage
has passed at least once over the soak window with no warn or fail in it, and when the stage has
served its minimum number of requests. Registered with the gate in apps.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from apps.core.durations import format_duration
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.gate_checks import Blocker
from apps.releases.models import Release, Stage

from .providers import ProviderError
from .selection import stage_criteria
from .standing import standings, traffic_served


def check_metrics(release: Release, stage: Stage | None, now: datetime) -> list[Blocker]:
    """One blocker per criterion failing, warning or without a pass during the stage's soak."""
    if release.status != ReleaseStatus.IN_PROGRESS or stage is None:
        return []
    criteria = [c for c in stage_criteria(release, stage) if not c.dry_run]
    blockers = []
    for standing in standings(release, stage, criteria, now):
        if standing.ok:
            continue
        criterion, latest = standing.criterion, standing.latest
        if latest is None:
            latest_text = "not evaluated yet"
        else:
            latest_text = (
                f"latest {latest.get_verdict_display().lower()}, "
                f"{criterion.metric.format(latest.value)}"
                + (f" — {latest.detail}" if latest.detail and latest.value is None else "")
            )
        if standing.bad:
            what = (
                f"warned or failed {standing.bad} time{'s' if standing.bad != 1 else ''} "
                "during the soak"
            )
        else:
            what = "has no passing evaluation yet"
        # Nothing bad yet (a fresh stage, or data still arriving) only asks for time: its own
        # kind, so the pages show it amber, not red, after every healthy advance.
        kind = BlockerKind.METRICS if standing.bad else BlockerKind.METRICS_PENDING
        blockers.append(Blocker(kind, f"Metric check {criterion.label} {what} ({latest_text})."))
    return blockers


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

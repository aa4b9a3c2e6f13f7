"""Demo metric checks: the runbooks' thresholds on every demo plan, and samples behind them.

Called by load_demo. Idempotent: metrics and criteria are keyed (update_or_create), and a release
gets samples only while it has none, so loading twice adds nothing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.checks.choices import BadDirection, CriticalAction, MetricKind, Variant
from apps.checks.models import MetricCriterion, MetricDefinition, Sample
from apps.releases.choices import ReleaseStatus, Severity
from apps.releases.models import Release, RolloutPlan

MINUTE = timedelta(minutes=1)

METRICS = [
    # key, name, unit, kind, bad direction, counts traffic
    ("error_rate", "Error rate", "", MetricKind.RATIO, BadDirection.HIGHER, True),
    ("p95_latency_seconds", "p95 latency", "s", MetricKind.GAUGE, BadDirection.HIGHER, False),
    (
        "cross_contamination_count",
        "Cross-contamination events",
        "events",
        MetricKind.COUNTER,
        BadDirection.HIGHER,
        False,
    ),
    ("quality_score", "Quality score", "score", MetricKind.GAUGE, BadDirection.LOWER, False),
    ("cache_hit_rate", "Cache hit rate", "", MetricKind.RATIO, BadDirection.LOWER, False),
]


@dataclass(frozen=True)
class Rule:
    """A runbook threshold as a criterion on every stage of a plan."""

    metric: str
    comparator: str
    warning: float | None
    critical: float | None
    for_minutes: int
    on_critical: str
    min_samples: int = 1
    incident_severity: str = ""  # blank: the INCIDENTS_BREACH_SEVERITY setting


# From the runbooks: error rate target < 1 %, warning > 2 %, critical > 5 % for 5 minutes;
# p95 latency target < 2 s, warning > 3 s, critical > 5 s; cross-contamination > 0 → immediate
# rollback, and its incident is SEV1 ("session isolation failure: critical, page"); quality score
# < 2.0 → rollback; cache hit rate < 70 % → warning.
RULES = [
    Rule("error_rate", ">", 0.02, 0.05, 5, CriticalAction.ROLLBACK),
    Rule("p95_latency_seconds", ">", 3.0, 5.0, 5, CriticalAction.PAUSE),
    Rule(
        "cross_contamination_count",
        ">",
        None,
        0,
        0,
        CriticalAction.ROLLBACK,
        min_samples=0,
        incident_severity=Severity.SEV1,
    ),
    Rule("quality_score", "<", None, 2.0, 5, CriticalAction.ROLLBACK),
    Rule("cache_hit_rate", "<", 0.70, None, 5, CriticalAction.NOTIFY),
]

# What the demo releases measured over their last half hour: (metric, value, requests).
HEALTHY = {
    "error_rate": (0.006, 1200),
    "p95_latency_seconds": (1.6, None),
    "quality_score": (4.3, None),
    "cache_hit_rate": (0.84, None),
}
# DCI's releases: the error rate sits above the 2 % warning (the paused one is the runbook's
# "climbing towards 5 %"), and the cache runs cold.
WARNING = {**HEALTHY, "error_rate": (0.031, 900), "cache_hit_rate": (0.66, None)}
SAMPLES_BY_SERVICE = {"dci-orchestrator": WARNING}


def load(plans: dict[str, RolloutPlan]) -> dict[str, Any]:
    """Metrics, the runbook criteria on each plan, and samples for running or paused releases."""
    metrics = {
        key: MetricDefinition.objects.update_or_create(
            key=key,
            defaults={
                "name": name,
                "unit": unit,
                "kind": kind,
                "bad_direction": bad,
                "counts_traffic": traffic,
            },
        )[0]
        for key, name, unit, kind, bad, traffic in METRICS
    }
    for plan in plans.values():
        for rule in RULES:
            MetricCriterion.objects.update_or_create(
                plan=plan,
                stage_template=None,
                metric=metrics[rule.metric],
                defaults={
                    "comparator": rule.comparator,
                    "warning_threshold": rule.warning,
                    "critical_threshold": rule.critical,
                    "for_window": rule.for_minutes * MINUTE,
                    "on_critical": rule.on_critical,
                    "min_samples": rule.min_samples,
                    "incident_severity": rule.incident_severity,
                },
            )
    samples = 0
    releases = Release.objects.filter(
        status__in=ReleaseStatus.active(), samples__isnull=True
    ).select_related("service")
    for release in releases:
        samples += _samples(release, metrics)
    return {"metrics": len(metrics), "samples": samples}


def _samples(release: Release, metrics: dict[str, MetricDefinition]) -> int:
    """Half an hour of one-per-30-seconds samples for the release and its control."""
    profile = SAMPLES_BY_SERVICE.get(release.service.slug, HEALTHY)
    # The same demo every time for the same release, whatever its id (ids differ between databases
    # and test orders, and the verdicts must not).
    rng = random.Random(f"{release.service.slug}:{release.version}")
    end = timezone.now().replace(microsecond=0)
    rows = []
    for step in range(60):
        at = end - timedelta(seconds=30 * (step + 1))
        for key, (value, requests) in profile.items():
            metric = metrics[key]
            for variant, shift in ((Variant.TREATMENT, 1.0), (Variant.CONTROL, 0.9)):
                # 2 % noise: a value beside its threshold (cache 0.66 by 0.70) stays on its side.
                noisy = value * shift * (1 + rng.gauss(0, 0.02))
                if metric.kind == MetricKind.RATIO:
                    noisy = min(1.0, max(0.0, noisy))
                rows.append(
                    Sample(
                        release=release,
                        metric=metric,
                        variant=variant,
                        at=at,
                        value=round(noisy, 5),
                        count=math.floor(requests * shift) if requests else None,
                    )
                )
        rows.append(
            Sample(
                release=release,
                metric=metrics["cross_contamination_count"],
                variant=Variant.TREATMENT,
                at=at,
                value=0,
            )
        )
    Sample.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)

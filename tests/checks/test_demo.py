"""The demo data carries the runbooks' thresholds and samples that give real verdicts."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.checks.models import CheckResult, MetricCriterion, Sample
from apps.releases.models import RolloutPlan


@pytest.fixture
def debug(settings) -> None:
    settings.DEBUG = True


def load_demo() -> str:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_demo_plans_carry_the_runbook_thresholds_and_releases_show_verdicts(db, debug):
    output = load_demo()

    assert "Metric checks: 5 metrics on every plan" in output
    rules = {
        (c.metric.key, c.comparator, c.warning_threshold, c.critical_threshold, c.on_critical)
        for c in MetricCriterion.objects.select_related("metric")
    }
    assert rules == {
        ("error_rate", ">", 0.02, 0.05, "rollback"),
        ("p95_latency_seconds", ">", 3.0, 5.0, "pause"),
        ("cross_contamination_count", ">", None, 0.0, "rollback"),
        ("quality_score", "<", None, 2.0, "rollback"),
        ("cache_hit_rate", "<", 0.7, None, "notify"),
    }
    assert MetricCriterion.objects.count() == 5 * RolloutPlan.objects.count()
    # "Session isolation failure: critical, page": its incident is SEV1, the others the setting's.
    severities = set(MetricCriterion.objects.values_list("metric__key", "incident_severity"))
    assert ("cross_contamination_count", "sev1") in severities
    assert {s for key, s in severities if key != "cross_contamination_count"} == {""}
    verdicts = {
        (r.release.service.slug, r.criterion.metric.key): r.verdict
        for r in CheckResult.objects.select_related("release__service", "criterion__metric")
    }
    assert verdicts[("ai-orchestra", "error_rate")] == "pass"
    assert verdicts[("dci-orchestrator", "error_rate")] == "warn"
    assert verdicts[("dci-orchestrator", "cache_hit_rate")] == "warn"


def test_loading_twice_adds_no_criteria_nor_samples(db, debug):
    load_demo()
    criteria, samples = MetricCriterion.objects.count(), Sample.objects.count()

    load_demo()

    assert (MetricCriterion.objects.count(), Sample.objects.count()) == (criteria, samples)

"""Admin: criteria on plans and stages, SQL sources for superusers, runs, backtest, run now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client

from apps.checks.choices import SourceKind, Verdict
from apps.checks.models import CheckRun, MetricCriterion, MetricSource
from apps.core.actors import Actor
from apps.releases.choices import ReleaseStatus
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion, push
from tests.factories import PlanFactory, UserFactory, make_release

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def plan(error_rate):
    made = PlanFactory(slug="watched", stages=[("canary", 5, timedelta(0), False)])
    criterion(made, error_rate, warning_threshold=0.02)
    return made


def test_plan_page_shows_its_criteria_inline(rita, plan):
    page = client_for(rita).get(f"/admin/releases/rolloutplan/{plan.pk}/change/")

    assert page.status_code == 200
    assert b"metric criteria (all stages)" in page.content.lower()
    assert b'name="criteria-0-critical_threshold"' in page.content


def test_stage_criteria_page_edits_a_stage_s_own_criteria(rita, plan, latency):
    stage = plan.stages.get()
    client = client_for(rita)

    listing = client.get("/admin/checks/stagecriteria/")
    page = client.get(f"/admin/checks/stagecriteria/{stage.pk}/change/")
    saved = client.post(
        f"/admin/checks/stagecriteria/{stage.pk}/change/",
        {
            "min_requests": "1000",
            "criteria-TOTAL_FORMS": "1",
            "criteria-INITIAL_FORMS": "0",
            "criteria-MIN_NUM_FORMS": "0",
            "criteria-MAX_NUM_FORMS": "1000",
            "criteria-0-metric": str(latency.pk),
            "criteria-0-comparator": ">",
            "criteria-0-critical_threshold": "5",
            "criteria-0-reference": "absolute",
            "criteria-0-tolerance": "relative",
            "criteria-0-significance_test": "none",
            "criteria-0-p_value": "0.05",
            "criteria-0-method": "sequential",
            "criteria-0-decision_window": "2 00:00:00",
            "criteria-0-for_window": "00:05:00",
            "criteria-0-interval": "00:01:00",
            "criteria-0-consecutive": "1",
            "criteria-0-min_samples": "1",
            "criteria-0-inconclusive_limit": "5",
            "criteria-0-on_warning": "notify",
            "criteria-0-on_critical": "rollback",
            "criteria-0-enabled": "on",
        },
    )

    assert listing.status_code == page.status_code == 200
    assert saved.status_code == 302, saved.content.decode()[:3000]
    made = MetricCriterion.objects.get(stage_template=stage)
    assert (made.label, made.on_critical, made.plan) == (
        "p95_latency_seconds > 5 s",
        "rollback",
        None,
    )
    stage.refresh_from_db()
    assert stage.min_requests == 1000


def test_only_superusers_create_or_edit_sql_sources(rita, root, error_rate, settings, service):
    settings.CHECKS_SQL_DATABASES = {"monitoring": "postgres://ro@127.0.0.1/monitoring"}
    body = {
        "metric": str(error_rate.pk),
        "service": str(service.pk),
        "kind": "sql",
        "database": "monitoring",
        "query": "SELECT now() AS at, 0.01 AS value",
        "timeout_seconds": "2",
    }

    refused = client_for(rita).post("/admin/checks/metricsource/add/", body)
    assert refused.status_code == 200  # the form again, with the error
    assert "Select a valid choice. sql is not one of the available choices." in (
        refused.content.decode()
    )
    assert not MetricSource.objects.exists()

    made = client_for(root).post("/admin/checks/metricsource/add/", body)
    assert made.status_code == 302
    source = MetricSource.objects.get()
    assert source.kind == SourceKind.SQL

    edit = client_for(rita).post(
        f"/admin/checks/metricsource/{source.pk}/change/", {**body, "query": "DELETE FROM x"}
    )
    assert edit.status_code == 403
    source.refresh_from_db()
    assert source.query == "SELECT now() AS at, 0.01 AS value"


def test_check_runs_are_read_only_filterable_by_verdict_in_fixed_queries(
    rita, plan, error_rate, production, django_assert_max_num_queries
):
    for n in range(4):
        release = make_release(plan=plan, environment=production, version=f"1.{n}")
        transitions.start(release, actor=Actor.system("tests"))
        push(release, error_rate, [0.03 if n % 2 else 0.01], end=NOW)
    run_checks()
    client = client_for(rita)

    with django_assert_max_num_queries(12):
        warned = client.get("/admin/checks/checkrun/?verdict__exact=warn")
    run = CheckRun.objects.filter(verdict=Verdict.WARN).first()
    page = client.get(f"/admin/checks/checkrun/{run.pk}/change/")

    assert warned.status_code == 200
    assert warned.content.count(b'<td class="field-verdict">Warn') == 2
    assert page.status_code == 200
    assert b"error_rate &gt; 5 %" in page.content
    assert b'name="_save"' not in page.content


def test_backtest_preview_replays_the_form_without_saving(rita, plan, error_rate, production):
    with time_machine.travel(NOW - timedelta(hours=2), tick=False) as clock:
        release = make_release(plan=plan, environment=production, version="0.9")
        transitions.start(release, actor=Actor.system("tests"))
        clock.shift(timedelta(minutes=10))
        transitions.rollback(release, actor=Actor.system("tests"), reason="by hand")
    push(release, error_rate, [0.01] * 5 + [0.2] * 5, end=NOW - timedelta(hours=2, minutes=-10))
    before = MetricCriterion.objects.count()

    page = client_for(rita).post(
        "/admin/checks/metriccriterion/add/",
        {
            "plan": str(plan.pk),
            "metric": str(error_rate.pk),
            "comparator": ">",
            "critical_threshold": "0.1",
            "reference": "absolute",
            "tolerance": "relative",
            "significance_test": "none",
            "p_value": "0.05",
            "method": "sequential",
            "decision_window": "2 00:00:00",
            "for_window": "00:03:00",
            "interval": "00:01:00",
            "consecutive": "1",
            "min_samples": "1",
            "inconclusive_limit": "5",
            "on_warning": "notify",
            "on_critical": "rollback",
            "enabled": "on",
            "_backtest": "Backtest",
        },
    )

    assert page.status_code == 200
    text = page.content.decode()
    assert "0.9 → production (rolled back): would roll back" in text
    assert "10:08 would roll back (fail, 20 %)" in text
    assert MetricCriterion.objects.count() == before


def test_run_metric_checks_now_from_the_release_list(rita, plan, error_rate, production):
    running = make_release(plan=plan, environment=production, version="2.0")
    planned = make_release(plan=plan, environment=production, version="2.1")
    transitions.start(running, actor=Actor.system("tests"))
    push(running, error_rate, [0.01], end=NOW)
    client = client_for(rita)

    response = client.post(
        "/admin/releases/release/",
        {"action": "run_metric_checks", "_selected_action": [running.pk, planned.pk]},
    )

    assert response.status_code == 302
    run = CheckRun.objects.get()
    assert (run.release, run.trigger, run.verdict) == (running, "manual", Verdict.PASS)
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert messages == [
        "Checked 1 running release(s): 1 criterion result(s); 1 not running, not checked."
    ]
    running.refresh_from_db()
    assert running.status == ReleaseStatus.IN_PROGRESS


def test_the_criteria_list_says_which_test_each_criterion_uses(rita, error_rate):
    plan = PlanFactory(slug="which-test")
    criterion(plan, error_rate)
    criterion(
        plan, error_rate, reference="control", significance_test="z-test", critical_threshold=10
    )
    criterion(
        plan,
        error_rate,
        reference="control",
        significance_test="z-test",
        critical_threshold=10,
        method="fixed",
        p_value=0.01,
    )
    criterion(
        plan,
        error_rate,
        reference="control",
        success=True,
        critical_threshold=None,
        minimum_effect=5,
    )

    page = client_for(rita).get("/admin/checks/metriccriterion/").content.decode()

    assert "Thresholds only" in page
    assert (
        "Two-proportion z-test (ratio metrics with counts) (sequential, always valid, alpha 0.05)"
        in page
    )
    assert "Two-proportion z-test (ratio metrics with counts) (fixed horizon, alpha 0.01)" in page
    assert "success (sequential, always valid, alpha 0.05)" in page

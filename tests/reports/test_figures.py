"""Every number of the weekly report on the fixture week (tests/reports/conftest.py), as worked
out by hand from what happened, and against the week before."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.reports import content
from apps.reports.schedule import period_containing
from apps.rollouts import transitions
from tests.factories import PlanFactory, make_release
from tests.reports.conftest import GENERATED_AT, at

pytestmark = pytest.mark.django_db

H = 3600.0
NOW = datetime.fromisoformat(GENERATED_AT)


def build(service=None):
    period = period_containing("weekly", date(2026, 11, 16), "UTC")
    return content.build(service, period, now=NOW)


def overview(report):
    return {item["key"]: (item["current"], item["previous"]) for item in report["overview"]}


def test_overview_figures_against_the_previous_week(week):
    report = build()
    assert report["period"]["label"] == "Week 47, 16–22 Nov 2026"
    assert report["previous_period"]["label"] == "Week 46, 9–15 Nov 2026"
    figures = overview(report)
    # Started: 2.0.0, 2.0.1, 2.0.2, 5.1, 5.2, 5.2.1, 2.1.0 (staging), 2.0.3; before: 1.9.0, 5.0.
    assert figures["started"] == (8, 2)
    # Completed: 2.0.0, 2.0.1, 5.1, 2.1.0 (staging counts here, not as a deployment).
    assert figures["completed"] == (4, 2)
    assert figures["rolled_back"] == (2, 0)
    assert figures["aborted"] == (0, 0)
    assert figures["deployments"] == (3, 2)
    # Lead time: 2.0.0 26 h, 2.0.1 12 h, 5.1 74 h; before: 1.9.0 26 h (5.0 sent no commit time).
    assert figures["lead_time"] == (pytest.approx(112 / 3 * H), pytest.approx(26 * H))
    # Failed: 2.0.1 (its incident), 2.0.2 and 5.2 (rolled back) of 5 finished in production.
    assert figures["change_failure_rate"] == (pytest.approx(3 / 5), 0.0)
    # Restored: "Checkout errors" 3 h and "Invoices late" 1 h; nothing the week before.
    assert figures["time_to_restore"] == (pytest.approx(2 * H), None)
    assert figures["incidents_opened"] == (3, 0)
    assert figures["incidents_resolved"] == (2, 0)
    assert figures["time_to_acknowledge"] == (pytest.approx(20 * 60), None)
    assert figures["time_to_resolve"] == (pytest.approx(2 * H), None)
    # Checks: 2.0.0 pass, pass, fail, warn; 2.0.1 pass, pass. Before: 1.9.0 pass, fail.
    assert figures["check_pass_rate"] == (pytest.approx(4 / 6), pytest.approx(1 / 2))
    assert figures["automatic_actions"] == (3, 0)
    assert figures["check_precision"] == (pytest.approx(1 / 3), None)
    # Sign-off waits: 2.0.0 asked 10:00, go 14:00 (4 h); 2.0.1 09:00 → 11:00 (2 h). Before: 1 h.
    assert figures["signoff_wait"] == (pytest.approx(3 * H), pytest.approx(1 * H))
    # Checklists: 2.0.0 3 of 4, 5.1 0 of 2; before 1.9.0 2 of 2.
    assert figures["checklist_completion"] == (pytest.approx(3 / 6), 1.0)


def test_the_change_column_reads_against_the_previous_week(week):
    items = {item["key"]: item for item in build()["overview"]}
    assert items["started"]["change_display"] == "+6"
    assert items["rolled_back"]["trend"] == "bad"
    assert items["change_failure_rate"]["change_display"] == "+60 pp"
    assert items["lead_time"]["current_display"] == "37.3 h"
    assert items["lead_time"]["change_display"] == "+11.3 h"
    assert items["check_pass_rate"]["trend"] == "good"
    assert items["time_to_restore"]["change_display"] == "n/a"


def test_dora_four_keys_per_service_and_overall(week):
    dora = build()["dora"]
    overall = dora["overall"]["current"]
    assert overall["deployments"] == 3
    assert overall["deployments_per_day"] == pytest.approx(3 / 7)
    assert (overall["finished"], overall["failed"]) == (5, 3)
    assert overall["lead_time_samples"] == 3
    before = dora["overall"]["previous"]
    assert (before["deployments"], before["finished"], before["failed"]) == (2, 2, 0)
    assert before["change_failure_rate"] == 0.0

    services = {row["service"]: row for row in dora["services"]}
    assert list(services) == ["AI Orchestra", "Billing"]
    orchestra, billing = services["AI Orchestra"]["current"], services["Billing"]["current"]
    # AI Orchestra: deployed 2.0.0 and 2.0.1; 2.0.1 had an incident, 2.0.2 was rolled back.
    assert orchestra["deployments"] == 2
    assert orchestra["lead_time"] == pytest.approx(19 * H)
    assert orchestra["change_failure_rate"] == pytest.approx(2 / 3)
    assert orchestra["time_to_restore"] == pytest.approx(3 * H)
    # Billing: deployed 5.1; 5.2 was rolled back; "Invoices late" took an hour.
    assert billing["deployments"] == 1
    assert billing["lead_time"] == pytest.approx(74 * H)
    assert billing["change_failure_rate"] == pytest.approx(1 / 2)
    assert billing["time_to_restore"] == pytest.approx(1 * H)
    assert services["AI Orchestra"]["previous"]["deployments"] == 1
    assert services["Billing"]["previous"]["lead_time"] is None
    assert [d["name"] for d in dora["definitions"]] == [
        "Deployment frequency",
        "Lead time for changes",
        "Change failure rate",
        "Time to restore service",
    ]


def test_one_service_scope_counts_only_its_releases(week, service):
    figures = overview(build(service))
    assert figures["started"] == (5, 1)
    assert figures["deployments"] == (2, 1)
    assert figures["change_failure_rate"] == (pytest.approx(2 / 3), 0.0)
    assert figures["incidents_opened"] == (2, 0)


def test_automatic_pauses_and_rollbacks_and_what_followed(week):
    actions = build()["automatic_actions"]
    # 2.0.2 paused by the checks, then rolled back by rita: confirmed.
    # 5.2 rolled back by the checks, the same commit released again as 5.2.1: a false alarm.
    # 2.0.3 paused by the checks, resumed by rita: a false alarm.
    assert [(r["release"], r["action"], r["outcome"]) for r in actions["rows"]] == [
        ("AI Orchestra 2.0.2", "pause", "confirmed"),
        ("Billing 5.2", "rollback", "false_alarm"),
        ("AI Orchestra 2.0.3", "pause", "false_alarm"),
    ]
    assert actions["pauses"] | {} == {
        "total": 2,
        "confirmed": 1,
        "false_alarm": 1,
        "undecided": 0,
        "precision": 0.5,
    }
    assert actions["rollbacks"]["precision"] == 0.0
    assert actions["all"]["precision"] == pytest.approx(1 / 3)


def test_releases_gates_checks_incidents_and_next_steps(week):
    report = build()
    rows = {f"{r['service']} {r['version']}": r for r in report["releases"]["rows"]}
    assert set(rows) == {
        "AI Orchestra 2.0.0",
        "AI Orchestra 2.0.1",
        "AI Orchestra 2.0.2",
        "AI Orchestra 2.0.3",
        "AI Orchestra 2.1.0",
        "Billing 5.1",
        "Billing 5.2",
        "Billing 5.2.1",
    }
    assert rows["AI Orchestra 2.0.1"]["incidents"] == 1
    assert rows["AI Orchestra 2.0.0"]["lead_time"] == 26 * H
    in_progress = {
        (f"{r['service']} {r['version']}", r["stage"], r["traffic_percentage"])
        for r in report["releases"]["in_progress"]
    }
    assert in_progress == {("AI Orchestra 2.0.3", "canary", 5), ("Billing 5.2.1", "canary", 5)}

    decisions = report["gates"]["decisions"]
    assert [(d["release"], d["decision"], d["signers"], d["comment"]) for d in decisions] == [
        ("AI Orchestra 2.0.0", "go", ["alice"], "alice: 2.0.0 looks clean"),
        ("AI Orchestra 2.0.1", "go", ["alice"], "alice: 2.0.1 looks clean"),
    ]
    assert report["gates"]["signoff_wait"]["stages"] == [
        {"stage": "canary", "gates": 2, "average": 3 * H, "longest": 4 * H}
    ]

    checks = {(r["release"], r["criterion"]): r for r in report["checks"]["rows"]}
    first = checks[("AI Orchestra 2.0.0", "error_rate > 5 %")]
    assert (first["evaluations"], first["passed"], first["failed"]) == (4, 2, 1)
    assert first["worst"] == 0.06 and first["worst_display"] == "6 %"
    assert checks[("AI Orchestra 2.0.1", "error_rate > 5 %")]["pass_rate"] == 1.0

    incidents = report["incidents"]["rows"]
    assert [(i["title"], i["time_to_acknowledge"], i["time_to_resolve"]) for i in incidents] == [
        ("Checkout errors after 2.0.1", 30 * 60, 3 * H),
        ("Invoices late", 10 * 60, 1 * H),
        ("Search slow", None, None),
    ]
    checklists = report["checklists"]["totals"]
    assert (checklists["done"], checklists["items"], checklists["checklists"]) == (3, 6, 2)

    steps = report["next_steps"]
    assert [(g["release"], g["gate"], g["waiting_for"]) for g in steps["pending_signoffs"]] == [
        ("AI Orchestra 2.0.3", "leaving stage canary", ["alice"])
    ]
    assert [r["release"] for r in steps["due_to_advance"]] == [
        "AI Orchestra 2.0.3",
        "Billing 5.2.1",
    ]
    assert [i["title"] for i in steps["open_incidents"]] == ["Search slow"]


def test_the_weekly_series_behind_the_charts(week):
    series = build()["weekly"]
    assert [w["label"] for w in series] == [f"W{n}" for n in range(40, 48)]
    assert series[-1] | {} == {
        "week": "2026-11-16",
        "label": "W47",
        "completed": 3,
        "rolled_back": 2,
        "failed": 3,
        "change_failure_rate": pytest.approx(0.6),
    }
    assert (series[-2]["completed"], series[-2]["change_failure_rate"]) == (2, 0.0)
    assert all(w["completed"] == 0 and w["change_failure_rate"] is None for w in series[:-2])


def test_the_report_takes_the_same_number_of_queries_for_more_releases(
    week, service, production, rita_actor
):
    with CaptureQueriesContext(connection) as first:
        build()
    plan = PlanFactory(slug="plan-more", stages=[("all", 100, timedelta(0), False)])
    for index in range(5):
        with at(f"2026-11-19 1{index}:00"):
            release = make_release(
                service=service, environment=production, plan=plan, version=f"3.0.{index}"
            )
            # The week's 2.0.3 still runs in production: starting beside it must be forced.
            transitions.start(release, actor=rita_actor, force=True, reason="more releases")
            transitions.advance(release, actor=rita_actor)
    with CaptureQueriesContext(connection) as second:
        report = build()
    assert overview(report)["deployments"] == (8, 2)
    # Every section is aggregated in SQL: no query per release.
    assert len(second.captured_queries) == len(first.captured_queries)

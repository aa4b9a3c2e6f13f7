"""The AI Orchestra runbook, lived through rolloutdesk by its people over three weeks.

shared/runbooks/ai-orchestra-rollout-guide.md: a pre-deployment checklist (code quality,
infrastructure, documentation), "Phase 2: 5 % of beta users (day 4-7) → Phase 3: 10 % (day 8),
25 % (day 10), 50 % (day 12), 75 % (day 14) → Phase 4: 100 %, monitor for 24 hours", the alert
rules "error rate > 0.05 for 5m: critical" and "p95 latency > 2 s for 5m: warning", and the
escalation "L1 Platform team, L2 Backend team lead, L3 CTO".

Version 2.0.0 breaks at 25 %: the error rate passes 5 %, the tick rolls it back, the on-call is
paged and acknowledges from the email; 2.0.1 carries the fix all the way to 100 %, and the weekly
report tells the product manager. At each step the test asserts what each person sees and
receives, and at the end that nobody received anything twice.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command

from apps.checklists.models import ChecklistTemplate, PlanChecklist
from apps.incidents.choices import IncidentStatus
from apps.incidents.models import (
    Incident,
)
from apps.jobs.models import JobItemFailure
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Environment, Release, RolloutPlan, Service
from tests.factories import PlanFactory

from .conftest import begin
from .harness import duplicates, site_path
from .runbook_setup import escalation_table, go_no_go, watch, weekly_report

pytestmark = [pytest.mark.django_db(transaction=True)]

RUNBOOK = Path(__file__).parents[1] / "fixtures/runbooks/ai-orchestra-rollout-guide.md"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
HEALTHY = {"error_rate": 0.004, "p95_latency_seconds": 0.8}
TEAM = "ai-orchestra-team@example.com"
BROKEN = {"error_rate": 0.083, "p95_latency_seconds": 1.1}


def configure(cast: dict) -> tuple[Service, RolloutPlan]:
    """What Rita sets up in the admin from the runbook."""
    call_command("import_runbook", str(RUNBOOK), stdout=open("/dev/null", "w"))
    pre = ChecklistTemplate.objects.get(kind="pre_deployment", name__startswith="AI Orchestra")

    plan = PlanFactory(
        slug="ai-orchestra-gradual",
        name="AI Orchestra gradual",
        stages=[
            ("beta 5%", 5, 4 * DAY, False),
            ("10%", 10, 2 * DAY, True),
            ("25%", 25, 2 * DAY, True),
            ("50%", 50, 2 * DAY, False),
            ("75%", 75, DAY, False),
            ("100%", 100, DAY, False),
        ],
    )
    PlanChecklist.objects.create(plan=plan, template=pre)

    # The alert rules, as criteria on every stage.
    five_minutes = timedelta(minutes=5)
    watch(
        plan, "error_rate", critical_threshold=0.05, on_critical="rollback", for_window=five_minutes
    )
    watch(
        plan,
        "p95_latency_seconds",
        warning_threshold=2.0,
        on_critical="pause",
        for_window=five_minutes,
    )
    # The go / no-go meeting: engineering and product sign the start and the step past 50 %.
    go_no_go(plan, None, "50%")

    service = Service.objects.create(
        name="AI Orchestra API",
        slug="ai-orchestra-api",
        owner_team="Platform",
        default_plan=plan,
        notification_emails=TEAM,
    )
    # The escalation table: L1 the platform on-call, L2 the backend lead, L3 the CTO.
    escalation_table(service, cast, on_call="omar", later=[(15, ["sam"]), (30, ["cleo"])])
    # The weekly summary to the product manager.
    weekly_report(cast["paul"], service)
    return service, plan


def test_ai_orchestra_runbook(cast, clock) -> None:
    service, plan = configure(cast)
    world, ci, cast_ = begin(service, clock, cast)
    rita, erin, paul, victor, omar, sam, cleo = (
        cast_[n] for n in ("rita", "erin", "paul", "victor", "omar", "sam", "cleo")
    )
    production = Environment.objects.get(slug="production")

    # --- 2.0.0: CI registers it and reports what it checked --------------------------------
    body = ci.register(
        service=service.slug,
        environment=production.slug,
        version="2.0.0",
        commit_sha="a1b2c3d",
        author="dev",
    )
    first = Release.objects.get(pk=body["id"])
    for key in ("tests", "coverage", "security-scan"):
        ci.report(first.pk, key, detail=f"{key}: green in pipeline 812")
    gate = ci.gate(first.pk)
    assert not gate["can_advance"] and gate["step"] == "start"
    assert {b["kind"] for b in gate["blockers"]} == {"checklist", "signoff"}

    # Rita works through the manual items on the release page.
    page = rita.sees(f"/releases/{first.pk}/")
    assert "2.0.0" in page and "Pre-Deployment Checklist" in page
    for item in first.checklists.get().items.filter(state="open"):
        assert not item.key, "the automated items were ticked by CI"
        rita.post(f"/releases/{first.pk}/checklist-items/{item.pk}/", {"done": "1"})
    assert {b["kind"] for b in ci.gate(first.pk)["blockers"]} == {"signoff"}

    # The sweep asks the approvers by email; the dashboard tells them too. They follow the link
    # in the email, sign in, and sign.
    assert not erin.inbox("sign")
    world.minutes(2)
    for approver in (erin, paul):
        [request] = approver.inbox("sign")
        assert "Waiting for your sign-off" in approver.card(first.pk)
        assert approver.light(first.pk) == "amber"
        approver.client.logout()  # a link opened later, from another device
        html = approver.sign_from(request, first.pk, comment="ok from the meeting")
        assert "2.0.0" in html
        assert "Waiting for your sign-off" not in approver.card(first.pk)
    assert ci.gate(first.pk)["can_advance"] is True
    assert not victor.inbox("sign"), "the viewer is not asked to sign"
    # The viewer sees the release, but its buttons are disabled with the reason.
    viewer_page = victor.sees(f"/releases/{first.pk}/")
    assert 'aria-describedby="why-no-actions"' in viewer_page
    victor.post(
        f"/releases/{first.pk}/transition/",
        {"action": "start", "reason": "me?"},
        expect=403,
    )

    # CI starts the rollout: 5 % of beta users.
    ci.call("post", f"/releases/{first.pk}/start/", {"reason": "pipeline 812"})
    assert ci.traffic(first.pk) == 5
    world.watch(first.pk, **HEALTHY)
    world.minutes(3)
    dashboard = victor.sees("/")
    assert "AI Orchestra API" in dashboard and "2.0.0" in dashboard
    # Healthy and soaking: the light waits (amber), it is not red.
    assert rita.light(first.pk) == "amber"
    assert "Soak:" in rita.card(first.pk)

    # Four days of beta, then the pipeline advances (the stage does not auto-advance).
    world.wait(4 * DAY + HOUR)
    assert ci.gate(first.pk)["can_advance"] is True
    assert rita.light(first.pk) == "green"
    ci.call("post", f"/releases/{first.pk}/advance/", {"reason": "beta soaked 4 days"})
    assert ci.traffic(first.pk) == 10
    # Right after a healthy advance nothing is wrong: the light waits again, never red.
    assert rita.light(first.pk) == "amber"
    world.minutes(2)
    assert rita.light(first.pk) == "amber"
    # 10 % auto-advances after two days of healthy soak.
    world.wait(2 * DAY + 2 * HOUR)
    assert ci.traffic(first.pk) == 25

    # --- the breach at 25 %: the error rate passes 5 % ----------------------------------------
    world.watch(first.pk, **BROKEN)
    world.until(
        lambda: Release.objects.get(pk=first.pk).status == ReleaseStatus.ROLLED_BACK,
        limit=timedelta(minutes=15),
        what="the tick rolls back 2.0.0",
    )
    assert ci.traffic(first.pk) == 0
    world.unwatch(first.pk)
    [incident] = Incident.objects.filter(service=service)
    assert incident.release_id == first.pk

    # Omar (L1) is paged; he acknowledges from the email within ten minutes.
    [page_mail] = omar.inbox(f"#{incident.pk}")
    [ack] = omar.links(page_mail, "/acknowledge/")
    confirm = omar.follow(ack).content.decode()
    assert "Acknowledge" in confirm
    world.minutes(8)
    omar.post(site_path(ack), {"reason": "looking at it"})
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.ACKNOWLEDGED
    world.minutes(30)
    assert not sam.inbox(f"#{incident.pk}"), "acknowledged within 15 minutes: no level 2"
    assert not cleo.inbox(f"#{incident.pk}")
    release_page = rita.sees(f"/releases/{first.pk}/")
    assert "Rolled back" in release_page and "error_rate" in release_page
    assert "8.3 %" in release_page or "8.30 %" in release_page, "the breach value is shown"
    assert rita.card(first.pk) == "", "a rolled-back release leaves the dashboard's running list"

    # --- 2.0.1 carries the fix all the way --------------------------------------------------
    omar.post(f"/incidents/{incident.pk}/resolve/", {"reason": "fixed in 2.0.1"})
    body = ci.register(
        service=service.slug,
        environment=production.slug,
        version="2.0.1",
        commit_sha="d4e5f6a",
        author="dev",
    )
    fix = Release.objects.get(pk=body["id"])
    for key in ("tests", "coverage", "security-scan"):
        ci.report(fix.pk, key)
    for item in fix.checklists.get().items.filter(state="open"):
        rita.post(f"/releases/{fix.pk}/checklist-items/{item.pk}/", {"done": "1"})
    world.minutes(2)
    for approver in (erin, paul):
        [request] = [m for m in approver.inbox("sign") if "2.0.1" in m.body]
        approver.sign_from(request, fix.pk)
    ci.call("post", f"/releases/{fix.pk}/start/", {"reason": "pipeline 815"})
    world.watch(fix.pk, **HEALTHY)

    def advance_when_green(expected_traffic: int, soak: timedelta) -> None:
        world.wait(soak + HOUR)
        gate = ci.gate(fix.pk)
        assert gate["can_advance"], gate
        ci.call("post", f"/releases/{fix.pk}/advance/", {"reason": "soaked"})
        assert ci.traffic(fix.pk) == expected_traffic

    advance_when_green(10, 4 * DAY)
    world.wait(4 * DAY + 4 * HOUR)  # 10 % and 25 % auto-advance after two days each
    assert ci.traffic(fix.pk) == 50
    # Leaving 50 % needs the go / no-go again; the sweep asks once the soak is over.
    world.wait(2 * DAY + HOUR)
    for approver in (erin, paul):
        asked = [m for m in approver.inbox("sign") if "2.0.1" in m.body]
        assert len(asked) == 2, [m.subject for m in asked]
        approver.sign_from(asked[-1], fix.pk)
    ci.call("post", f"/releases/{fix.pk}/advance/", {"reason": "go from the meeting"})
    assert ci.traffic(fix.pk) == 75
    advance_when_green(100, DAY)
    world.wait(DAY + HOUR)
    ci.call("post", f"/releases/{fix.pk}/advance/", {"reason": "monitored 24 hours"})
    fix.refresh_from_db()
    assert fix.status == ReleaseStatus.COMPLETED
    assert ci.traffic(fix.pk) == 100

    # --- the weekly report reaches the product manager ---------------------------------------
    world.until(
        lambda: len(paul.inbox("weekly report")) == 4,
        limit=12 * DAY,
        what="the report of the week 2.0.1 completed arrives on Monday 09:00",
    )
    reports = paul.inbox("weekly report")
    assert [m.subject.split(" · ")[-1] for m in reports] == [
        "Week 45, 2–8 Nov 2026",
        "Week 46, 9–15 Nov 2026",
        "Week 47, 16–22 Nov 2026",
        "Week 48, 23–29 Nov 2026",
    ]
    assert "2.0.0" in reports[0].body and "rolled back" in reports[0].body.lower()
    assert "2.0.1" in reports[2].body

    # What each person received over the three weeks, and nobody anything twice.
    assert duplicates(mail.outbox) == []
    for approver in (erin, paul):
        assert [m.subject for m in approver.inbox("sign-off needed")] == [
            "[AI Orchestra API] Sign-off needed: 2.0.0 → Production, the start",
            "[AI Orchestra API] Sign-off needed: 2.0.1 → Production, the start",
            "[AI Orchestra API] Sign-off needed: 2.0.1 → Production, leaving stage 50%",
        ]
    assert len(omar.inbox()) == 1
    assert not sam.inbox() and not cleo.inbox() and not victor.inbox()
    assert not cast_["dev"].inbox()
    team = [m.subject.split(": ")[-1] for m in mail.outbox if m.to == [TEAM]]
    assert team == [
        "go decided",
        "started (beta 5%)",
        "advanced (10%)",
        "advanced (25%)",
        "rolled back (25%)",
        "go decided",
        "started (beta 5%)",
        "advanced (10%)",
        "advanced (25%)",
        "advanced (50%)",
        "go decided (50%)",
        "advanced (75%)",
        "advanced (100%)",
        "completed (100%)",
    ]
    # Every periodic job ran all along, and none of them failed on any row.
    assert world.jobs_run["apps.rollouts.tasks.signoffs_sweep"] > 100
    assert not JobItemFailure.objects.exists(), list(JobItemFailure.objects.values())

"""The DCI Orchestrator runbook, lived through rolloutdesk by its people over two weeks.

shared/runbooks/dci-orchestrator-deployment-guide.md: a pre-deployment checklist of code,
configuration, infrastructure and team readiness; "monitor performance for 24-48 hours at each
level: 5 % → 10 % → 25 % → 50 % → 100 %"; alert thresholds (critical: error rate > 10 % for
5 minutes, response time over 3 minutes; warning: quality < 3.5 for 30 minutes); escalation
"Level 1 (0-15 minutes) engineering, Level 2 (15-30) senior engineer and product manager,
Level 3 (30+) engineering manager and executives"; a 24-hour post-deployment checklist and a
weekly review checklist.

Version 3.0.0 warns on quality at 5 % (one email for the episode), pauses at 25 % when the
response time passes three minutes, escalates to level 2 because the on-call is slow, is
acknowledged from the emailed link at level 2 and resumed by the release manager; the step past
50 % waits for a go / no-go (with a reminder to the late signer), and the release completes, its
post-deployment checklist is ticked, and the weekly report arrives.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command

from apps.checklists.models import Checklist, ChecklistTemplate, PlanChecklist
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

RUNBOOK = Path(__file__).parents[1] / "fixtures/runbooks/dci-orchestrator-deployment-guide.md"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
TEAM = "dci-team@example.com"
HEALTHY = {"error_rate": 0.012, "p95_latency_seconds": 48.0, "quality_score": 4.3}
CI_KEYS = ("tests", "integration-tests", "build", "lint", "security-scan")


def configure(cast: dict) -> tuple[Service, RolloutPlan]:
    """What Rita sets up in the admin from the runbook."""
    call_command("import_runbook", str(RUNBOOK), stdout=open("/dev/null", "w"))
    plan = PlanFactory(
        slug="dci-gradual",
        name="DCI gradual traffic increase",
        stages=[
            ("5%", 5, 2 * DAY, False),
            ("10%", 10, DAY, True),
            ("25%", 25, DAY, True),
            ("50%", 50, 2 * DAY, False),
            ("100%", 100, DAY, False),
        ],
    )
    for kind in ("pre_deployment", "post_deployment", "periodic_review"):
        template = ChecklistTemplate.objects.get(kind=kind, name__startswith="DCI Orchestrator")
        PlanChecklist.objects.create(plan=plan, template=template)

    five_minutes = timedelta(minutes=5)
    watch(
        plan,
        "error_rate",
        warning_threshold=0.05,
        critical_threshold=0.10,
        for_window=five_minutes,
        on_critical="rollback",
    )
    watch(
        plan,
        "p95_latency_seconds",
        critical_threshold=180.0,
        for_window=five_minutes,
        on_critical="pause",
    )
    watch(
        plan,
        "quality_score",
        comparator="<",
        warning_threshold=3.5,
        critical_threshold=2.0,
        for_window=timedelta(minutes=30),
        on_critical="rollback",
    )
    # The go / no-go before full traffic: engineering and product.
    go_no_go(plan, "50%")

    service = Service.objects.create(
        name="DCI Results",
        slug="dci-results",
        owner_team="Results Quality",
        default_plan=plan,
        notification_emails=TEAM,
    )
    escalation_table(
        service,
        cast,
        on_call="omar",
        later=[(15, ["sam", "paul"]), (30, ["erin", "cleo"])],
    )
    # The engineering manager reads the weekly summary of every service.
    weekly_report(cast["erin"], None)
    return service, plan


def test_dci_orchestrator_runbook(cast, clock) -> None:
    service, plan = configure(cast)
    world, ci, cast_ = begin(service, clock, cast)
    rita, erin, paul, victor, omar, sam, cleo = (
        cast_[n] for n in ("rita", "erin", "paul", "victor", "omar", "sam", "cleo")
    )
    production = Environment.objects.get(slug="production")

    body = ci.register(
        service=service.slug, environment=production.slug, version="3.0.0", author="dev"
    )
    release = Release.objects.get(pk=body["id"])
    pre = release.checklists.get(kind="pre_deployment")

    # Rita ticks the readiness items in bulk from the admin; CI's items stay CI's.
    response = rita.client.post(
        "/admin/checklists/checklist/",
        {"action": "mark_done_action", "_selected_action": [pre.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "5 automated item(s) were left for CI" in response.content.decode()
    assert [b["kind"] for b in ci.gate(release.pk)["blockers"]] == ["checklist"]
    assert {i.key for i in pre.items.filter(state="open")} == set(CI_KEYS)
    # Post-deployment and weekly review do not apply yet: the page says so, not in red.
    page = rita.sees(f"/releases/{release.pk}/")
    assert "Not yet due" in page

    for key in CI_KEYS:
        ci.report(release.pk, key, detail="green in pipeline 77")
    assert ci.gate(release.pk)["can_advance"] is True
    ci.call("post", f"/releases/{release.pk}/start/", {"reason": "pipeline 77"})
    world.watch(release.pk, **HEALTHY)
    world.minutes(5)

    # --- 5 %: quality dips under 3.5 for 40 minutes: one warning email for the episode ------
    world.watch(release.pk, **{**HEALTHY, "quality_score": 3.2})
    world.minutes(40)
    world.watch(release.pk, **HEALTHY)
    world.minutes(10)
    warnings = [m for m in mail.outbox if m.to == [TEAM] and "quality_score" in m.subject]
    assert len(warnings) == 1, [(m.subject, m.body) for m in warnings]
    release.refresh_from_db()
    assert release.status == ReleaseStatus.IN_PROGRESS, "a warning notifies, it does not act"
    assert rita.light(release.pk) == "red", "a warning during the soak holds the gate"

    # Two days of soak from the warning on, then the pipeline widens to 10 %.
    world.wait(2 * DAY + HOUR)
    assert ci.gate(release.pk)["can_advance"], ci.gate(release.pk)
    ci.call("post", f"/releases/{release.pk}/advance/", {"reason": "48h at 5%"})
    world.until(
        lambda: ci.traffic(release.pk) == 25, limit=2 * DAY, what="10 % auto-advances to 25 %"
    )

    # --- 25 %: response time passes three minutes: the tick pauses -------------------------
    world.watch(release.pk, **{**HEALTHY, "p95_latency_seconds": 205.0})
    world.until(
        lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PAUSED,
        limit=timedelta(minutes=15),
        what="the tick pauses 3.0.0",
    )
    assert ci.traffic(release.pk) == 25, "paused keeps its traffic"
    [incident] = Incident.objects.filter(service=service)
    assert len(omar.inbox(f"#{incident.pk}")) == 1
    # Omar does not answer; at 15 minutes level 2 (Sam and Paul) is paged.
    world.minutes(16)
    [sam_page] = sam.inbox(f"#{incident.pk}")
    assert len(paul.inbox(f"#{incident.pk}")) == 1
    [ack] = sam.links(sam_page, "/acknowledge/")
    sam.follow(ack)
    sam.post(site_path(ack), {"reason": "on it: LLM provider slow"})
    assert Incident.objects.get(pk=incident.pk).status == IncidentStatus.ACKNOWLEDGED
    world.watch(release.pk, **HEALTHY)
    world.minutes(30)
    assert not cleo.inbox() and not erin.inbox(f"#{incident.pk}"), "no level 3"
    assert len(omar.inbox(f"#{incident.pk}")) == 1, "paged once, never again"

    # Rita resumes from the release page once the provider recovered; Sam resolves.
    rita.post(
        f"/releases/{release.pk}/transition/",
        {"action": "resume", "reason": "provider latency back to normal"},
    )
    sam.post(f"/incidents/{incident.pk}/resolve/", {"reason": "provider incident over"})
    release.refresh_from_db()
    assert release.status == ReleaseStatus.IN_PROGRESS

    # --- 50 %: the go / no-go; Paul is late and gets a reminder --------------------------------
    world.until(
        lambda: ci.traffic(release.pk) == 50, limit=3 * DAY, what="25 % auto-advances to 50 %"
    )
    world.wait(2 * DAY + HOUR)
    [erin_ask] = erin.inbox("sign-off needed")
    erin.sign_from(erin_ask, release.pk, comment="metrics fine")
    world.wait(DAY + 2 * HOUR)
    reminders = paul.inbox("remind")
    assert len(reminders) == 1, [m.subject for m in paul.inbox()]
    assert not erin.inbox("remind"), "Erin signed: no reminder"
    paul.sign_from(reminders[0], release.pk, comment="survey looks good")

    rita.post(
        f"/releases/{release.pk}/transition/",
        {"action": "advance", "reason": "go from Erin and Paul"},
    )
    assert ci.traffic(release.pk) == 100
    world.wait(DAY + HOUR)
    ci.call("post", f"/releases/{release.pk}/advance/", {"reason": "24h at 100%"})
    release.refresh_from_db()
    assert release.status == ReleaseStatus.COMPLETED

    # The 24-hour post-deployment checklist opens on completion; Rita works through it.
    post = Checklist.objects.get(release=release, kind="post_deployment")
    assert post.opened_at is not None
    world.wait(DAY)
    for item in post.items.filter(state="open"):
        rita.post(f"/releases/{release.pk}/checklist-items/{item.pk}/", {"done": "1"})
    assert not post.items.filter(state="open").exists()

    # --- the weekly report reaches the engineering manager --------------------------------
    world.until(
        lambda: any("3.0.0" in m.body for m in erin.inbox("weekly report")),
        limit=8 * DAY,
        what="a weekly report naming 3.0.0",
    )

    assert duplicates(mail.outbox) == []
    assert not victor.inbox() and not cast_["dev"].inbox()
    team = [m.subject for m in mail.outbox if m.to == [TEAM]]
    assert sum("paused" in s for s in team) == 1 and sum("resumed" in s for s in team) == 1
    assert sum("completed" in s for s in team) == 1
    assert not JobItemFailure.objects.exists(), list(JobItemFailure.objects.values())

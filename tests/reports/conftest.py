"""A fixture week of two services, built through the product's own functions at frozen times.

Week 47 (Mon 16 – Sun 22 Nov 2026, UTC) and the week before it; the report is generated on
Mon 23 Nov 09:00. Every figure the tests expect is worked out by hand in test_figures.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group

from apps.checklists.choices import ChecklistKind, ItemState
from apps.checklists.models import Checklist, ChecklistItem
from apps.checks.choices import MetricKind, Verdict
from apps.checks.models import CheckResult, CheckRun, MetricCriterion, MetricDefinition
from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.releases.models import Environment, StageTemplate
from apps.releases.roles import APPROVERS
from apps.rollouts import transitions
from apps.signoffs import asking
from apps.signoffs import services as signoffs
from apps.signoffs.choices import Decision
from apps.signoffs.models import SignOffRule
from tests.factories import PlanFactory, UserFactory, make_release

GENERATED_AT = "2026-11-23 09:00:00+00:00"
SYSTEM = Actor.system("metric-checks")


def at(moment: str) -> time_machine.travel:
    """Freeze time at a UTC moment written as "2026-11-16 10:00"."""
    return time_machine.travel(datetime.fromisoformat(f"{moment}:00+00:00"), tick=False)


class Week:
    """Handles on the fixture week's objects, for the tests' hand-computed expectations."""

    def __init__(self, **objects: object) -> None:
        self.__dict__.update(objects)


def _complete(release, actor, start: str, steps: list[str]):
    with at(start):
        transitions.start(release, actor=actor)
    for moment in steps:
        with at(moment):
            transitions.advance(release, actor=actor)
    return release


def _results(release, criterion, run_at: str, verdicts_values: list[tuple[str, float]]) -> None:
    moment = datetime.fromisoformat(f"{run_at}:00+00:00")
    check_run = CheckRun.objects.create(release=release, started_at=moment)
    for index, (verdict, value) in enumerate(verdicts_values):
        CheckResult.objects.create(
            run=check_run,
            release=release,
            criterion=criterion,
            label=criterion.label,
            at=moment + timedelta(minutes=index),
            level="ok",
            verdict=verdict,
            value=value,
        )


def _checklist(release, done: int, total: int) -> None:
    checklist = Checklist.objects.create(
        release=release, name="Post-deployment", kind=ChecklistKind.POST_DEPLOYMENT
    )
    ChecklistItem.objects.bulk_create(
        ChecklistItem(
            checklist=checklist,
            position=index,
            section="Checks",
            text=f"Item {index}",
            state=ItemState.DONE if index < done else ItemState.OPEN,
        )
        for index in range(total)
    )


@pytest.fixture
def week(service, other_service, production, rita, rita_actor, alice):
    """The fixture week; see the module docstring and test_figures.py."""
    staging = Environment.objects.create(name="Staging", slug="staging", order=0)
    stages = [("canary", 5, timedelta(0), False), ("half", 50, timedelta(0), False)]
    plan_a = PlanFactory(slug="plan-a", stages=stages)
    plan_b = PlanFactory(slug="plan-b", stages=stages)
    service.default_plan = plan_a
    service.save()
    other_service.default_plan = plan_b
    other_service.save()
    # Leaving canary on plan A needs a go from an approver.
    rule = SignOffRule.objects.create(
        plan=plan_a, stage_template=StageTemplate.objects.get(plan=plan_a, position=0)
    )
    rule.groups.add(Group.objects.get(name=APPROVERS))
    error_rate = MetricDefinition.objects.create(
        key="error_rate", name="Error rate", kind=MetricKind.RATIO
    )
    criterion = MetricCriterion.objects.create(
        plan=plan_a,
        metric=error_rate,
        critical_threshold=0.05,
        warning_threshold=0.025,
        dry_run=True,
    )

    # The releases' author has an account: an author matching nobody would hold the gate.
    UserFactory(username="carol")

    def release(svc, version, env=production, commit_time=None, sha="", plan=None):
        with at("2026-11-01 00:00"):
            return make_release(
                service=svc,
                plan=plan,
                environment=env,
                version=version,
                commit_time=datetime.fromisoformat(f"{commit_time}:00+00:00")
                if commit_time
                else None,
                commit_sha=sha,
                author_name="carol",
            )

    def go(rel, asked: str, signed: str) -> None:
        with at(asked):
            asking.request_signoffs(rel, actor=rita_actor)
        with at(signed):
            signoffs.sign(
                rel, user=alice, decision=Decision.GO, comment=f"{rel.version} looks clean"
            )

    # --- the previous week (9 – 15 Nov) ---
    p1 = release(service, "1.9.0", commit_time="2026-11-09 08:00")
    with at("2026-11-09 10:00"):
        transitions.start(p1, actor=rita_actor)
    go(p1, "2026-11-09 10:00", "2026-11-09 11:00")
    for moment in ["2026-11-09 12:00", "2026-11-10 10:00"]:
        with at(moment):
            transitions.advance(p1, actor=rita_actor)
    _results(p1, criterion, "2026-11-09 10:30", [(Verdict.PASS, 0.01), (Verdict.FAIL, 0.07)])
    _checklist(p1, done=2, total=2)
    p2 = _complete(
        release(other_service, "5.0"),
        rita_actor,
        "2026-11-11 10:00",
        ["2026-11-11 12:00", "2026-11-11 16:00"],
    )

    # --- week 47 (16 – 22 Nov) ---
    r1 = release(service, "2.0.0", commit_time="2026-11-16 08:00")
    with at("2026-11-16 10:00"):
        transitions.start(r1, actor=rita_actor)
    go(r1, "2026-11-16 10:00", "2026-11-16 14:00")
    for moment in ["2026-11-16 15:00", "2026-11-17 10:00"]:
        with at(moment):
            transitions.advance(r1, actor=rita_actor)
    _results(
        r1,
        criterion,
        "2026-11-16 11:00",
        [(Verdict.PASS, 0.01), (Verdict.PASS, 0.02), (Verdict.FAIL, 0.06), (Verdict.WARN, 0.03)],
    )
    _checklist(r1, done=3, total=4)

    r2 = release(service, "2.0.1", commit_time="2026-11-18 06:00")
    with at("2026-11-18 09:00"):
        transitions.start(r2, actor=rita_actor)
    go(r2, "2026-11-18 09:00", "2026-11-18 11:00")
    for moment in ["2026-11-18 12:00", "2026-11-18 18:00"]:
        with at(moment):
            transitions.advance(r2, actor=rita_actor)
    _results(r2, criterion, "2026-11-18 10:00", [(Verdict.PASS, 0.01), (Verdict.PASS, 0.015)])
    with at("2026-11-18 20:00"):
        x = lifecycle.open_incident(
            service=service, title="Checkout errors after 2.0.1", actor=rita_actor, release=r2
        )
    with at("2026-11-18 20:30"):
        lifecycle.acknowledge(x, actor=rita_actor)
    with at("2026-11-18 23:00"):
        lifecycle.resolve(x, actor=rita_actor)

    r3 = release(service, "2.0.2", commit_time="2026-11-19 08:00")
    with at("2026-11-19 10:00"):
        transitions.start(r3, actor=rita_actor)
    with at("2026-11-19 11:00"):
        transitions.pause(r3, actor=SYSTEM, reason="error rate above 5 %")
    with at("2026-11-19 12:00"):
        transitions.rollback(r3, actor=rita_actor, reason="keeping it off")

    r4 = _complete(
        release(other_service, "5.1", commit_time="2026-11-17 07:00"),
        rita_actor,
        "2026-11-17 09:00",
        ["2026-11-18 09:00", "2026-11-20 09:00"],
    )
    _checklist(r4, done=0, total=2)
    with at("2026-11-19 09:00"):
        y = lifecycle.open_incident(service=other_service, title="Invoices late", actor=rita_actor)
    with at("2026-11-19 09:10"):
        lifecycle.acknowledge(y, actor=rita_actor)
    with at("2026-11-19 10:00"):
        lifecycle.resolve(y, actor=rita_actor)

    r5 = release(other_service, "5.2", sha="abc1234")
    with at("2026-11-20 10:00"):
        transitions.start(r5, actor=rita_actor)
    with at("2026-11-20 11:00"):
        transitions.rollback(r5, actor=SYSTEM, reason="latency above 2 s")
    with at("2026-11-21 10:00"):
        r5b = make_release(
            service=other_service, environment=production, version="5.2.1", commit_sha="abc1234"
        )
        transitions.start(r5b, actor=rita_actor)

    r6 = _complete(
        release(service, "2.1.0", env=staging, plan=plan_b),
        rita_actor,
        "2026-11-21 09:00",
        ["2026-11-21 10:00", "2026-11-21 12:00"],
    )
    r6.refresh_from_db()

    r7 = release(service, "2.0.3")
    with at("2026-11-22 10:00"):
        transitions.start(r7, actor=rita_actor)
    with at("2026-11-22 11:00"):
        transitions.pause(r7, actor=SYSTEM, reason="error rate above 5 %")
    with at("2026-11-22 12:00"):
        transitions.resume(r7, actor=rita_actor, reason="blip in the load balancer")
        asking.request_signoffs(r7, actor=rita_actor)
    with at("2026-11-22 15:00"):
        z = lifecycle.open_incident(service=service, title="Search slow", actor=rita_actor)

    return Week(
        p1=p1,
        p2=p2,
        r1=r1,
        r2=r2,
        r3=r3,
        r4=r4,
        r5=r5,
        r5b=r5b,
        r6=r6,
        r7=r7,
        x=x,
        y=y,
        z=z,
        criterion=criterion,
        staging=staging,
    )

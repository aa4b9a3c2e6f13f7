"""DORA across environments: a plan going staging → production counts by what reached
production — a completion in production is a deployment, a rollback in staging no failure."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import time_machine

from apps.core.actors import Actor
from apps.reports.dora import four_keys
from apps.reports.schedule import period_containing
from apps.rollouts import transitions
from tests.factories import EnvironmentFactory, PlanFactory, make_release

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


@pytest.fixture
def staging_then_production(db):
    staging = EnvironmentFactory(slug="staging", name="Staging", is_production=False)
    zero = timedelta(0)
    return PlanFactory(
        slug="staging-then-production",
        stages=[("staging", 20, zero, False, staging), ("A/B", 50, zero, False)],
    )


def test_deployments_and_failures_count_what_reached_production(
    service, production, staging_then_production
):
    def release(version: str):
        made = make_release(
            service=service, environment=production, plan=staging_then_production, version=version
        )
        transitions.start(made, actor=SYSTEM)
        return made

    with time_machine.travel("2026-11-17 10:00Z", tick=False):
        deployed = release("1.0")
        transitions.advance(deployed, actor=SYSTEM)  # into production
        transitions.advance(deployed, actor=SYSTEM)  # completed in production
        in_staging = release("1.1")
        transitions.rollback(in_staging, actor=SYSTEM)  # never reached production
        in_production = release("1.2")
        transitions.advance(in_production, actor=SYSTEM)
        transitions.rollback(in_production, actor=SYSTEM)  # failed in production
    keys = four_keys(service, period_containing("weekly", date(2026, 11, 17), "UTC"))
    overall = keys["overall"]
    assert overall["deployments"] == 1
    assert (overall["finished"], overall["failed"]) == (2, 1)
    assert overall["change_failure_rate"] == pytest.approx(1 / 2)

"""The scheduled tick auto-advances green releases and leaves the others alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import transitions
from apps.rollouts.tasks import tick
from tests.factories import EnvironmentFactory, PlanFactory, make_release

pytestmark = pytest.mark.django_db


def test_tick_advances_only_auto_stages_whose_soak_is_over(service, production):
    auto = PlanFactory(
        slug="auto",
        stages=[
            ("canary", 5, timedelta(hours=2), True),
            ("half", 50, timedelta(hours=2), True),
            ("all", 100, timedelta(0), True),
        ],
    )
    manual = PlanFactory(slug="manual", stages=[("canary", 5, timedelta(0), False)])
    system = Actor.system("tests")
    with time_machine.travel("2026-11-02 09:00:00+00:00", tick=False) as clock:
        # One running release per service and environment: each in an environment of its own.
        staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
        eu = EnvironmentFactory(name="Production EU", slug="production-eu")
        a = make_release(service=service, environment=production, plan=auto, version="a")
        m = make_release(service=service, environment=staging, plan=manual, version="m")
        p = make_release(service=service, environment=eu, plan=auto, version="p")
        for release in (a, m, p):
            transitions.start(release, actor=system)
        transitions.pause(p, actor=system)

        assert tick() == {
            "verdicts_recomputed": 0,
            "examined": 0,
            "advanced": 0,
            "held": 0,
            "skipped": 0,
        }
        clock.shift(timedelta(hours=2, minutes=1))
        assert tick()["advanced"] == 1
        a.refresh_from_db()
        assert a.current_stage.name == "half"
        event = a.events.get(verb=EventVerb.ADVANCED)
        assert event.actor_name == "system:auto-advance"
        clock.shift(timedelta(hours=2, minutes=1))
        tick()
        tick()  # the last stage auto-advances too: the release completes, once
        a.refresh_from_db()
        assert a.status == ReleaseStatus.COMPLETED
        assert a.events.filter(verb=EventVerb.COMPLETED).count() == 1
    m.refresh_from_db()
    p.refresh_from_db()
    assert (m.current_stage.name, m.status) == ("canary", ReleaseStatus.IN_PROGRESS)
    assert (p.current_stage.name, p.status) == ("canary", ReleaseStatus.PAUSED)

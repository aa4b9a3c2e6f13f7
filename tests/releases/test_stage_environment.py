"""A stage names its environment: its template's, or the release's when the template names none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import EnvironmentFactory, PlanFactory, make_release

pytestmark = pytest.mark.django_db


def test_stages_copy_their_templates_environment_or_the_releases(service, production) -> None:
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    plan = PlanFactory(
        slug="staging-then-prod",
        stages=[
            ("staging", 20, timedelta(0), False, staging),
            ("canary", 10, timedelta(0), False),
            ("full", 100, timedelta(0), False, production),
        ],
    )
    release = make_release(service=service, environment=production, plan=plan)

    stages = list(release.stages.order_by("position"))
    assert [s.environment.slug for s in stages] == ["staging", "production", "production"]


def test_a_plan_without_environments_runs_every_stage_in_the_releases(service, production) -> None:
    release = make_release(service=service, environment=production)

    assert {s.environment_id for s in release.stages.all()} == {production.pk}


def test_every_blocker_kind_is_counted_by_its_own_noun() -> None:
    # The dashboard counts the blockers after the first by kind ("and 1 failing metric check,
    # 1 release running alongside"); a kind without a noun read "1 other".
    from apps.releases.choices import BlockerKind

    for kind in BlockerKind.values:
        assert "other" not in BlockerKind.noun(kind, 1), kind
        assert "other" not in BlockerKind.noun(kind, 2), kind

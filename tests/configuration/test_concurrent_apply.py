"""Two pipelines apply the same new configuration at the same moment (PostgreSQL): the advisory
lock makes the second wait for the first and find nothing left to do, instead of both creating
the plan (one failing on its unique slug) or interleaving their changes."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from apps.configuration.apply import apply
from apps.core.actors import Actor
from apps.releases.models import RolloutPlan, StageTemplate

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENT = {
    "version": 1,
    "environments": [{"slug": "prod", "name": "Prod"}],
    "plans": [
        {
            "slug": "together",
            "name": "Together",
            "stages": [
                {"name": f"s{i}", "traffic_percentage": p, "environment": "prod"}
                for i, p in enumerate((1, 5, 10, 25, 50, 100))
            ],
        }
    ],
}


def test_two_applies_at_once_apply_once(postgres):
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def pipeline() -> None:
        try:
            start.wait()
            result = apply(DOCUMENT, actor=Actor.system("pipeline"))
            outcomes.append(len(result.changes))
        except Exception as exc:  # noqa: BLE001 - the test reports whatever either raised
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=pipeline) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes, key=str) == [0, 8], outcomes  # environment, plan, 6 stages; then none
    assert RolloutPlan.objects.filter(slug="together").count() == 1
    assert StageTemplate.objects.filter(plan__slug="together").count() == 6

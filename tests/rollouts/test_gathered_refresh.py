"""A loop of changes recomputes each kept verdict once, not once per change.

The tick rolls back each breaching release in a transaction of its own, and opens an incident for
each: an incident touches every release of its service. Recomputed at every commit, a tick that
rolled back 60 releases of one service evaluated some 1,900 gates and took 75 s (the worker-killed
fault test ran out of time on a busy CI machine); gathered, it evaluates each one once.
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone

from apps.core.actors import Actor
from apps.releases import gate_inputs
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release
from apps.rollouts import transitions, verdicts
from apps.rollouts.breach_response import run_checks
from apps.rollouts.models import KeptVerdict
from apps.rollouts.ticks import auto_advance_due
from tests.checks.conftest import criterion, push
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release

pytestmark = pytest.mark.django_db(transaction=True)

RELEASES = 6


def releases_of_one_service(plan) -> list[Release]:
    service = ServiceFactory(slug="ai-orchestra", notification_emails="oncall@example.com")
    made = []
    for n in range(RELEASES):
        # A region each: one release of a service runs in an environment at a time.
        region = EnvironmentFactory(name=f"Region {n}", slug=f"region-{n}")
        release = make_release(service=service, environment=region, plan=plan, version=f"1.{n}")
        transitions.start(release, actor=Actor.system("tests"))
        made.append(release)
    return made


def counting_refreshes():
    return mock.patch.object(verdicts, "refresh_one", wraps=verdicts.refresh_one)


def test_a_tick_rolling_back_every_release_of_a_service_recomputes_each_once(error_rate) -> None:
    plan = PlanFactory(slug="watched", stages=[("canary", 10, timedelta(hours=24), False)])
    criterion(plan, error_rate, critical_threshold=0.05, on_critical="rollback")
    releases = releases_of_one_service(plan)
    now = timezone.now()
    for release in releases:
        push(release, error_rate, [0.09] * 3, end=now, count=400)

    with counting_refreshes() as refresh_one:
        report = run_checks()

    assert sorted(report.rolled_back) == sorted(r.pk for r in releases)
    per_release = [call.args[0] for call in refresh_one.call_args_list]
    # The check results' own recompute, then the one after the last rollback and incident;
    # per commit it was 2 x RELEASES each (every rollback and every incident, service-wide).
    assert max(per_release.count(r.pk) for r in releases) <= 2, per_release
    # And what is kept is what the gate says now: rolled back, nothing due.
    for release in releases:
        row = KeptVerdict.objects.get(pk=release.pk)
        assert row.payload == verdicts.document(
            verdicts.gate.evaluate(Release.objects.get(pk=release.pk))
        )
        assert not row.is_due(timezone.now())
    assert Release.objects.filter(status=ReleaseStatus.ROLLED_BACK).count() == RELEASES


def test_auto_advancing_every_release_of_a_service_recomputes_each_once() -> None:
    plan = PlanFactory(
        slug="quick",
        stages=[("canary", 10, timedelta(0), True), ("all", 100, timedelta(hours=1), False)],
    )
    releases = releases_of_one_service(plan)

    with counting_refreshes() as refresh_one:
        report = auto_advance_due()

    assert sorted(report.advanced) == sorted(r.pk for r in releases)
    per_release = [call.args[0] for call in refresh_one.call_args_list]
    assert max(per_release.count(r.pk) for r in releases) == 1, per_release
    for release in releases:
        assert KeptVerdict.objects.get(pk=release.pk).traffic["percentage"] == 100


def test_changes_inside_gathered_commit_due_and_recompute_at_its_end() -> None:
    plan = PlanFactory(slug="plain", stages=[("canary", 10, timedelta(hours=1), False)])
    release = releases_of_one_service(plan)[0]
    with counting_refreshes() as refresh_one:
        with gate_inputs.gathered():
            for _ in range(3):
                with transaction.atomic():
                    gate_inputs.changed(releases=[release.pk])
                # Committed, not yet recomputed: due, so a reader evaluates afresh meanwhile.
                assert KeptVerdict.objects.get(pk=release.pk).is_due(timezone.now())
            assert refresh_one.call_count == 0
        assert refresh_one.call_count == 1
    assert not KeptVerdict.objects.get(pk=release.pk).is_due(timezone.now())

"""The dashboard and the release page read a fixed number of queries, however many stages,
checklist items, sign-offs, samples, check results, events or finished releases there are."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.checklists.models import ChecklistItem
from apps.core.actors import Actor
from apps.pages.dashboard import FINISHED_SHOWN
from apps.releases.models import Event, Release
from apps.rollouts import gate, transitions
from apps.signoffs import services as signoffs
from tests.factories import EnvironmentFactory, ServiceFactory, UserFactory, make_release
from tests.pages.conftest import build_plan, client_for, start_rollout

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


def approvers(count: int, prefix: str) -> list:
    from django.contrib.auth.models import Group

    from apps.releases.roles import APPROVERS

    group = Group.objects.get(name=APPROVERS)
    users = [UserFactory(username=f"{prefix}{i}") for i in range(count)]
    for user in users:
        user.groups.add(group)
    return users


def small_rollout(service, production):
    plan = build_plan("small", approvals=50)
    rollout = start_rollout(
        service=service,
        environment=production,
        plan=plan,
        version="1.0.0",
        minutes=10,
        per_minute=1,
        evaluations=1,
    )
    for user in approvers(1, "small-"):
        signoffs.sign(rollout.release, user=user, decision="go")
    return rollout


def large_rollout(service, production):
    plan = build_plan("large", extra_stages=15, items=60, approvals=50)
    rollout = start_rollout(
        service=service,
        environment=production,
        plan=plan,
        version="9.0.0",
        minutes=24 * 60,
        per_minute=3,
        evaluations=40,
    )
    for user in approvers(20, "large-"):
        signoffs.sign(rollout.release, user=user, decision="go", comment="fine by me")
    item = ChecklistItem.objects.filter(checklist__release=rollout.release).first()
    for done in [True, False] * 30:
        from apps.checklists.services import set_item_state

        set_item_state(item, done=done, actor=SYSTEM)
    Event.objects.bulk_create(
        Event(release=rollout.release, verb="updated", actor_kind="system", actor_name="x")
        for _ in range(400)
    )
    return rollout


def count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_release_page_queries_do_not_grow_with_its_size(
    service, production, rita, django_assert_num_queries
):
    small = small_rollout(service, production)
    large = large_rollout(ServiceFactory(slug="big"), production)
    assert large.release.stages.count() == 18
    assert large.release.samples.count() > 8_000

    client = client_for(rita)
    expected = count(client, reverse("pages:release", args=[small.release.pk]))
    with django_assert_num_queries(expected):
        response = client.get(reverse("pages:release", args=[large.release.pk]))
    assert response.status_code == 200
    # Every range of the chart too.
    for key in ("1h", "6h", "24h", "7d"):
        with django_assert_num_queries(expected):
            client.get(reverse("pages:release", args=[large.release.pk]), {"range": key})


def test_dashboard_queries_do_not_grow_with_history_or_size(
    service, production, rita, django_assert_num_queries
):
    rollout = small_rollout(service, production)
    make_release(service=service, environment=production, version="1.1.0")  # planned
    # Finished releases ran in staging: production runs one release of the service at a time.
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    done = make_release(service=service, environment=staging, version="0.9.1")
    transitions.start(done, actor=SYSTEM)
    transitions.rollback(done, actor=SYSTEM, reason="old")

    client = client_for(rita)
    expected = count(client, reverse("pages:dashboard"))

    # Far more of everything, but the same releases rolling out and waiting to start.
    for user in approvers(20, "more-"):
        signoffs.sign(rollout.release, user=user, decision="go")
    Event.objects.bulk_create(
        Event(release=rollout.release, verb="updated", actor_kind="system", actor_name="x")
        for _ in range(300)
    )
    for i in range(FINISHED_SHOWN + 5):
        old = make_release(service=service, environment=staging, version=f"0.{i}.0")
        transitions.start(old, actor=SYSTEM)
        transitions.advance(old, actor=SYSTEM, reason="history")
        transitions.rollback(old, actor=SYSTEM, reason="history")
    with django_assert_num_queries(expected):
        assert client.get(reverse("pages:dashboard")).status_code == 200


def test_each_running_release_costs_the_dashboard_one_gate_evaluation(service, production, rita):
    """The gate is the one place that decides: the dashboard asks it once per rolling release
    and adds no query of its own per release."""
    rollout = small_rollout(service, production)
    client = client_for(rita)
    one = count(client, reverse("pages:dashboard"))

    second = start_rollout(
        service=ServiceFactory(slug="second"),
        environment=production,
        plan=build_plan("second", approvals=50),
        version="2.0.0",
        minutes=10,
        per_minute=1,
        evaluations=1,
    )
    two = count(client, reverse("pages:dashboard"))
    release = Release.objects.with_related().get(pk=second.release.pk)  # as the dashboard reads
    with CaptureQueriesContext(connection) as evaluation:
        gate.evaluate(release, now=timezone.now() + timedelta(seconds=1))
    assert two - one == len(evaluation)
    assert rollout.release.pk != second.release.pk

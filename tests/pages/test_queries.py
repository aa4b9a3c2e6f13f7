"""The dashboard and the release page read a fixed number of queries, however many stages,
checklist items, sign-offs, samples, check results, events or finished releases there are."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.checklists.models import ChecklistItem
from apps.core.actors import Actor
from apps.pages.dashboard import FINISHED_SHOWN
from apps.releases.models import Event, Release
from apps.rollouts import transitions
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
    service, production, rita, django_assert_num_queries, django_capture_on_commit_callbacks
):
    # Every change recomputes its releases' kept verdicts on commit (run here as it would be):
    # the dashboard then only reads them.
    with django_capture_on_commit_callbacks(execute=True):
        rollout = small_rollout(service, production)
        make_release(service=service, environment=production, version="1.1.0")  # planned
        # Finished releases ran in staging: production runs one release of a service at a time.
        staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
        done = make_release(service=service, environment=staging, version="0.9.1")
        transitions.start(done, actor=SYSTEM)
        transitions.rollback(done, actor=SYSTEM, reason="old")

    client = client_for(rita)
    expected = count(client, reverse("pages:dashboard"))

    # Far more of everything, but the same releases rolling out and waiting to start.
    with django_capture_on_commit_callbacks(execute=True):
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


def test_the_dashboard_reads_kept_verdicts_at_a_fixed_query_count(
    production, rita, django_capture_on_commit_callbacks
):
    """However many releases roll out, the dashboard never asks the gate: it reads each
    release's kept verdict with the release, in the same query."""
    client = client_for(rita)
    with django_capture_on_commit_callbacks(execute=True):
        small_rollout(ServiceFactory(slug="first"), production)
    one = count(client, reverse("pages:dashboard"))
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(11):
            service = ServiceFactory(slug=f"more-{n}")
            transitions.start(make_release(service=service, environment=production), actor=SYSTEM)
    assert Release.objects.active().count() == 12
    with CaptureQueriesContext(connection) as queries:
        html = client.get(reverse("pages:dashboard")).content.decode()
    assert html.count('<li class="card') == 12
    assert len(queries) == one
    # Ordered otherwise or a later page: never more (fewer when no row on the page waits for a
    # sign-off: the three sign-off queries are skipped); filtered, one more to count the matches.
    for query in ({"per": 5, "page": 3}, {"order": "urgency"}):
        assert count(client, reverse("pages:dashboard") + "?" + urlencode(query)) <= one
    for query in ({"gate": "amber"}, {"service": "more-3", "environment": "production"}):
        assert count(client, reverse("pages:dashboard") + "?" + urlencode(query)) <= one + 1

"""Two people, two workers, or CI and a person at once never advance a release twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.releases.choices import EventVerb
from apps.releases.models import Release
from apps.rollouts import transitions
from apps.rollouts.ticks import auto_advance_due
from tests.factories import EnvironmentFactory, PlanFactory, make_release

pytestmark = pytest.mark.django_db(transaction=True)


def _in_thread(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            connection.close()

    return run


def test_two_concurrent_advances_advance_exactly_once(postgres, service, production, rita):
    release = make_release(service=service, environment=production)
    transitions.start(release, actor=Actor.for_user(rita))
    barrier = threading.Barrier(2)

    @_in_thread
    def advance_as(name: str) -> str:
        # Each caller looked at the release (canary) before either acted: the classic double click.
        seen = Release.objects.get(pk=release.pk)
        barrier.wait(timeout=10)
        try:
            transitions.advance(seen, actor=Actor.for_user(rita), reason=name)
        except transitions.TransitionError as exc:
            return f"refused: {exc.message}"
        return "advanced"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(advance_as, ["first", "second"]))
    assert outcomes[0] == "advanced"
    assert outcomes[1].startswith("refused: The release changed meanwhile")
    release.refresh_from_db()
    assert release.current_stage.name == "quarter"
    assert release.events.filter(verb=EventVerb.ADVANCED).count() == 1


def test_concurrent_api_advances_give_one_200_and_409s(postgres, service, production):
    plan = PlanFactory(
        slug="soaked",
        stages=[
            ("canary", 5, timedelta(0), False),
            ("quarter", 25, timedelta(hours=1), False),
            ("all", 100, timedelta(0), False),
        ],
    )
    release = make_release(service=service, environment=production, plan=plan)
    _, key = ApiToken.issue("ci", [service])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.post(f"/api/v1/releases/{release.pk}/start/")
    barrier = threading.Barrier(6)

    @_in_thread
    def call(_: int) -> int:
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        barrier.wait(timeout=10)
        return c.post(f"/api/v1/releases/{release.pk}/advance/").status_code

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(call, range(6)))
    assert codes == [200] + [409] * 5
    release.refresh_from_db()
    assert release.current_stage.name == "quarter"
    assert release.events.filter(verb=EventVerb.ADVANCED).count() == 1


def test_two_ticks_at_once_auto_advance_each_release_once(postgres, service, production):
    plan = PlanFactory(
        slug="auto",
        stages=[("canary", 5, timedelta(0), True), ("all", 100, timedelta(hours=1), False)],
    )
    # Each in a region of its own: one release of a service runs in an environment at a time.
    regions = [production] + [
        EnvironmentFactory(name=f"Region {n}", slug=f"region-{n}") for n in range(1, 10)
    ]
    releases = [
        make_release(service=service, environment=regions[n], plan=plan, version=f"9.{n}")
        for n in range(10)
    ]
    for release in releases:
        transitions.start(release, actor=Actor.system("tests"))
    barrier = threading.Barrier(2)

    @_in_thread
    def tick(_: int) -> int:
        barrier.wait(timeout=10)
        return len(auto_advance_due().advanced)

    with ThreadPoolExecutor(2) as pool:
        advanced = list(pool.map(tick, range(2)))
    assert sum(advanced) == 10
    for release in releases:
        release.refresh_from_db()
        assert release.current_stage.name == "all"
        assert release.events.filter(verb=EventVerb.ADVANCED).count() == 1

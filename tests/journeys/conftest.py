"""The cast and the population every journey starts from: the demo data, and other services'
releases in every status, so each periodic job meets the rows it meets in real use."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.releases.models import Environment, Service
from apps.releases.roles import APPROVERS, RELEASE_MANAGERS, VIEWERS, ensure_roles
from apps.rollouts import transitions
from tests.factories import PlanFactory, ServiceFactory, UserFactory, make_release

from .harness import Person, Pipeline, World

# A Monday morning in Berlin; the weekly report goes out on Mondays at 09:00.
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def populate_other_services() -> None:
    """Releases of another team's service in every status (none of the cast's business)."""
    system = Actor.system("population")
    other = ServiceFactory(name="Search", slug="search", notification_emails="search@example.com")
    plan = PlanFactory(
        slug="search-plan",
        stages=[("canary", 10, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )
    staging = Environment.objects.get(slug="staging")
    production = Environment.objects.get(slug="production")
    make_release(service=other, environment=production, plan=plan, version="7.0.0")  # planned
    for version, env, steps in (
        ("6.0.0", production, ("start", "advance", "advance")),  # completed
        ("6.1.0", production, ("start", "rollback")),
        ("6.2.0", production, ("abort",)),
        ("6.3.0", staging, ("start", "pause")),
        ("6.4.0", production, ("start",)),
    ):
        release = make_release(service=other, environment=env, plan=plan, version=version)
        for step in steps:
            transitions.ACTIONS[step](release, actor=system, reason=f"population: {step}")


def _fast_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Weeks of beats commit thousands of times; the test database need not survive a power cut.
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=OFF")


@pytest.fixture(autouse=True)
def fast_sqlite() -> Iterator[None]:
    from django.db import connection
    from django.db.backends.signals import connection_created

    connection_created.connect(_fast_sqlite)
    if connection.connection is not None:
        _fast_sqlite(None, connection)
    yield
    connection_created.disconnect(_fast_sqlite)


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def population(transactional_db, clock, settings) -> None:
    ensure_roles()  # a transactional test before this one flushed the migration's groups
    settings.DEBUG = True  # load_demo refuses a production database
    call_command("load_demo", stdout=open("/dev/null", "w"))
    settings.DEBUG = False
    populate_other_services()


def cast_member(username: str, *groups: str, **fields: Any) -> Any:
    user = UserFactory(username=username, first_name=username.title(), **fields)
    # load_demo's people (rita, victor…) already exist with the demo's password: get_or_create
    # returns them as they are, so give them the tests' password and the roles asked here.
    user.set_password("pw-for-tests-1")
    for name, value in fields.items():
        setattr(user, name, value)
    user.save()
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def cast(population) -> dict[str, Any]:
    """Rita (release manager), Erin (EM approver), Paul (product approver), Victor (viewer),
    Dev (the author), Omar (on call), Sam (senior engineer, level 2)."""
    return {
        "rita": cast_member("rita", RELEASE_MANAGERS, is_staff=True),
        "erin": cast_member("erin", APPROVERS, "Engineering managers"),
        "paul": cast_member("paul", APPROVERS, "Product"),
        "victor": cast_member("victor", VIEWERS),
        "dev": cast_member("dev"),
        "omar": cast_member("omar", VIEWERS),
        "sam": cast_member("sam", VIEWERS),
        "cleo": cast_member("cleo", VIEWERS),
    }


def people(world: World, cast: dict[str, Any]) -> dict[str, Person]:
    return {name: Person(name, user, world) for name, user in cast.items()}


def pipeline_for(service: Service) -> Pipeline:
    _, key = ApiToken.issue(f"{service.slug}-ci", [service])
    return Pipeline(key)


def begin(service: Service, clock: Any, cast: dict[str, Any]) -> tuple[World, Pipeline, dict]:
    """The service's CI token, the world it pushes into, and the cast signed in, each at their
    own browser; the inboxes start empty."""
    ci = pipeline_for(service)
    world = World(clock, ci)
    cast_ = people(world, cast)
    for person in cast_.values():
        person.sign_in()
    mail.outbox.clear()
    return world, ci, cast_

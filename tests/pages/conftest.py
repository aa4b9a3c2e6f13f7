"""A rollout as the pages show it: a release soaking at canary with an exit checklist, a sign-off
rule for the Approvers, an error-rate criterion with treatment and control samples, and checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from apps.checklists.choices import ChecklistKind
from apps.checks.choices import BadDirection, MetricKind, Variant
from apps.checks.models import MetricCriterion, MetricDefinition, Sample
from apps.checks.recording import run_now
from apps.core.actors import Actor
from apps.releases.models import Environment, Release, RolloutPlan, Service
from apps.releases.roles import APPROVERS, ensure_roles
from apps.rollouts import transitions
from apps.signoffs.choices import QuorumMode
from apps.signoffs.models import SignOffRule
from tests.checklists.helpers import link, make_template
from tests.conftest import need_service
from tests.factories import PlanFactory, UserFactory, make_release

MINUTE = timedelta(minutes=1)
SYSTEM = Actor.system("tests")
SMOKE = "Smoke tests pass in canary"


@dataclass
class Rollout:
    """A running release and the things its page shows."""

    release: Release
    plan: RolloutPlan
    metric: MetricDefinition
    criterion: MetricCriterion


def build_plan(
    slug: str, *, extra_stages: int = 0, items: int = 0, approvals: int | None = None
) -> RolloutPlan:
    """canary 5 % → (extra stages) → half 50 % → full 100 %, no soak; canary's exit needs a
    checklist (SMOKE plus `items` more) and a go from the Approvers (`approvals` of them in all
    when given)."""
    stages = [("canary", 5, timedelta(0), False)]
    stages += [(f"step-{i}", 10 + i % 40, timedelta(0), False) for i in range(extra_stages)]
    stages += [("half", 50, timedelta(0), False), ("full", 100, timedelta(0), False)]
    plan = PlanFactory(slug=slug, name=f"Plan {slug}", stages=stages)
    template = make_template(
        f"Canary exit {slug}",
        ChecklistKind.STAGE_EXIT,
        {
            "Verification": [SMOKE] + [f"Extra check {i}" for i in range(items)],
            "Optional": [("Dashboards look normal", "", False)],
        },
    )
    link(plan, template, "canary")
    for i in range(extra_stages):
        step = make_template(f"Step {i} exit {slug}", ChecklistKind.STAGE_EXIT, {"Checks": ["Ok"]})
        link(plan, step, f"step-{i}")
    quorum = {"quorum": QuorumMode.COUNT, "approvals_needed": approvals} if approvals else {}
    rule = SignOffRule.objects.create(
        plan=plan, stage_template=plan.stages.get(name="canary"), **quorum
    )
    if not Group.objects.filter(name=APPROVERS).exists():
        ensure_roles()  # a transactional test before this one flushed the migration's groups
    rule.groups.set([Group.objects.get(name=APPROVERS)])
    return plan


def error_rate_metric() -> MetricDefinition:
    return MetricDefinition.objects.get_or_create(
        key="error_rate",
        defaults={
            "name": "Error rate",
            "kind": MetricKind.RATIO,
            "bad_direction": BadDirection.HIGHER,
        },
    )[0]


def start_rollout(
    *,
    service: Service,
    environment: Environment,
    plan: RolloutPlan,
    version: str = "2.4.0",
    minutes: int = 60,
    per_minute: int = 2,
    evaluations: int = 4,
) -> Rollout:
    """Start the release `minutes` ago, push a treatment and a control sample stream since then
    (`per_minute` of each a minute), and evaluate the checks `evaluations` times (the last now)."""
    metric = error_rate_metric()
    criterion = MetricCriterion.objects.create(
        plan=plan,
        metric=metric,
        comparator=">",
        warning_threshold=0.02,
        critical_threshold=0.05,
    )
    now = timezone.now()
    began = now - MINUTE * minutes
    with time_machine.travel(began - MINUTE, tick=False):
        release = make_release(service=service, environment=environment, plan=plan, version=version)
    with time_machine.travel(began, tick=False):
        transitions.start(release, actor=SYSTEM)
    samples = []
    for minute in range(minutes):
        for k in range(per_minute):
            at = began + MINUTE * minute + timedelta(seconds=1 + k * 50 / per_minute)
            rate = 0.008 + 0.002 * ((minute // 5) % 3)
            samples.append(Sample(release=release, metric=metric, at=at, value=rate, count=500))
            samples.append(
                Sample(
                    release=release,
                    metric=metric,
                    variant=Variant.CONTROL,
                    at=at,
                    value=0.007,
                    count=5000,
                )
            )
    # The last minute too, so the check run "now" sees data.
    samples.append(
        Sample(
            release=release, metric=metric, at=now - timedelta(seconds=20), value=0.009, count=500
        )
    )
    Sample.objects.bulk_create(samples, batch_size=2000)
    for index in range(evaluations):
        when = now - MINUTE * (evaluations - 1 - index) * 10
        with time_machine.travel(when, tick=False):
            run_now(release, now=when)
    release.refresh_from_db()
    return Rollout(release=release, plan=plan, metric=metric, criterion=criterion)


@pytest.fixture
def rollout(service, production) -> Rollout:
    return start_rollout(service=service, environment=production, plan=build_plan("pages"))


def client_for(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def outsider(db):
    """Olive: signed in, but in no role group."""
    return UserFactory(username="olive")


# --- a real browser (Debian's Chromium driven by Playwright) ---------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory


@pytest.fixture
def browser(transactional_db, monkeypatch) -> Iterator:
    """Chromium, started once the test database is ready (and stopped before it is flushed).

    While Playwright's sync API runs, this thread counts as "async" for Django: the ORM calls
    the test makes meanwhile are plain synchronous ones (hence DJANGO_ALLOW_ASYNC_UNSAFE), on a
    connection of their own, closed before Playwright stops.
    """
    if not os.path.exists(CHROMIUM):
        need_service(f"{CHROMIUM} is missing: apt-get install chromium fonts-liberation")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
            connections.close_all()


@pytest.fixture(scope="module")
def live_server(django_db_setup) -> Iterator:
    """pytest-django's live server, started with plain-HTTP settings.

    The server builds its middleware once, when it starts: the HTTPS redirect and secure cookies
    of the production settings must be off by then (the suite's autouse `_plain_http` comes too
    late for a server started earlier).
    """
    from django.test.utils import override_settings
    from pytest_django.live_server_helper import LiveServer

    with override_settings(
        SECURE_SSL_REDIRECT=False,
        SECURE_HSTS_SECONDS=0,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
    ):
        server = LiveServer("localhost")
        yield server
        server.stop()


@pytest.fixture
def open_page(browser, live_server):
    """A new browser tab at the given width; closed after the test."""
    contexts = []

    def make(width: int = 1280):
        context = browser.new_context(viewport={"width": width, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def sign_in(page, live_server, username: str) -> None:
    page.goto(live_server.url + "/")
    # Not signed in: the dashboard sends us to the styled sign-in page and back.
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server.url + "/")


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

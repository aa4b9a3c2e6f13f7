"""The demo stays alive: people in every role, something real on every page, traffic that keeps
coming (with one release drifting into a pause), and the login block printed last."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from apps.checklists.choices import ChecklistKind
from apps.checklists.models import Checklist
from apps.checks.models import CheckResult, Sample
from apps.demo import traffic
from apps.demo.cast import PEOPLE
from apps.incidents.choices import IncidentStatus
from apps.incidents.models import Incident, IncidentRouting
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release
from apps.reports.models import Report, ReportSubscription
from apps.rollouts.breach_response import ACTOR_NAME, run_checks
from apps.signoffs.models import ReleaseSignOffRule

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def debug(settings) -> None:
    settings.DEBUG = True


def load_demo() -> str:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_every_role_has_a_demo_login_and_every_page_something_real() -> None:
    output = load_demo()

    password = re.search(r"^Admin login: admin / (\S+)$", output, re.M).group(1)
    for person in PEOPLE:
        line = f"Demo login: {person.username} / {password} ({person.group})"
        assert line in output
        user = get_user_model().objects.get(username=person.username)
        assert list(user.groups.values_list("name", flat=True)) == [person.group]
        assert Client().login(username=person.username, password=password)

    running = Release.objects.get(service__slug="ai-orchestra", version="2.4.0")
    kinds = set(Checklist.objects.filter(release=running).values_list("kind", flat=True))
    assert kinds == {ChecklistKind.PRE_DEPLOYMENT, ChecklistKind.STAGE_EXIT}
    pre = Checklist.objects.with_progress().get(release=running, kind=ChecklistKind.PRE_DEPLOYMENT)
    assert pre.item_done == pre.item_total > 0  # done before the start, CI items by CI
    assert ReleaseSignOffRule.objects.filter(release=running, stage__name="25%").exists()
    assert IncidentRouting.objects.filter(policy__name="Release incidents").count() == 3
    assert Incident.objects.filter(status=IncidentStatus.OPEN, service__slug="billing-api").exists()
    assert ReportSubscription.objects.filter(email="stakeholders@example.com").exists()
    assert Report.objects.exists()

    # Loading again adds none of it twice.
    counts = (Incident.objects.count(), Report.objects.count(), Checklist.objects.count())
    load_demo()
    assert (Incident.objects.count(), Report.objects.count(), Checklist.objects.count()) == counts


def test_the_demo_stays_green_and_one_release_drifts_into_a_pause() -> None:
    load_demo()
    start = timezone.now()
    feeder = traffic.feeder(start, frozenset({"ai-orchestra", "dci-orchestrator", "billing-api"}))
    drifting = Release.objects.get(service__slug="ai-orchestra", version="2.4.0")
    staging = Release.objects.get(service__slug="dci-orchestrator", version="1.9.0")
    before = Sample.objects.count()

    paused_at = None
    with time_machine.travel(start, tick=False) as clock:
        for half_minute in range(1, 2 * 25):
            clock.shift(timedelta(seconds=30))
            now = timezone.now()
            feeder.feed(now)
            if half_minute % 2 == 0:
                run_checks(now=now)
                drifting.refresh_from_db()
                if drifting.status == ReleaseStatus.PAUSED and paused_at is None:
                    paused_at = now - start

    assert Sample.objects.count() > before
    # Fed all along: the staging release is still evaluated on fresh samples, not "0 sample(s)".
    latest = CheckResult.objects.filter(release=staging).order_by("-at").first()
    assert latest is not None and latest.samples > 0
    assert staging.__class__.objects.get(pk=staging.pk).status == ReleaseStatus.IN_PROGRESS
    # p95 from 1.8 s climbing 0.25 s a minute: past 5 s after ~13 min, held 5 min: paused.
    assert paused_at is not None, "the drifting release was never paused"
    assert timedelta(minutes=12) <= paused_at <= timedelta(minutes=24), paused_at
    pause = drifting.events.filter(verb="paused").latest("created_at")
    assert pause.actor_name.endswith(ACTOR_NAME)
    assert "p95_latency_seconds" in pause.reason


def test_the_login_block_is_printed_once_the_web_answers(live_server) -> None:
    load_demo()
    out = io.StringIO()

    call_command("demo_banner", "--exit", f"--url={live_server.url}/api/v1/health/", stdout=out)

    text = out.getvalue()
    assert "rolloutdesk is up." in text
    assert re.search(r"Admin login: admin / \S+", text)
    assert "Demo login: alice / " in text
    assert text.rstrip().endswith("=" * 72)

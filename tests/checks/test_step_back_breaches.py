"""A criterion whose action is step back takes traffic down one stage, once per breach episode;
at the first stage it pauses instead (issue 14 point 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from apps.checks.choices import CriticalAction, Verdict, WarningAction
from apps.checks.models import CheckResult
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion, push
from tests.factories import PlanFactory, ServiceFactory, make_release

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SYSTEM = Actor.system("tests")


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def plan():
    return PlanFactory(
        slug="gradual", stages=[(f"{p}%", p, timedelta(0), False) for p in (25, 50, 75, 100)]
    )


def _running(plan, production, stage: int):
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    release = make_release(service=service, environment=production, plan=plan, version="2.4")
    transitions.start(release, actor=SYSTEM)
    for _ in range(stage):
        transitions.advance(release, actor=SYSTEM)
    return release


def test_a_warning_steps_back_once_per_episode_and_again_on_a_new_breach(
    clock, plan, production, error_rate
):
    release = _running(plan, production, 2)
    rule = criterion(plan, error_rate, warning_threshold=0.02, critical_threshold=0.05,
                     on_warning=WarningAction.STEP_BACK)  # fmt: skip
    # 11:59 warns, 12:00 still warns, 12:01 passes, 12:02 warns again.
    push(release, error_rate, [0.03, 0.03, 0.01, 0.03], end=NOW + 3 * MINUTE)

    report = run_checks()

    assert report.stepped_back == [release.pk]
    release.refresh_from_db()
    assert (release.status, release.traffic_percentage) == (ReleaseStatus.IN_PROGRESS, 50)
    event = release.events.get(verb=EventVerb.STEPPED_BACK)
    assert event.actor_name == "system:metric-checks"
    assert "warning threshold > 2 %" in event.reason
    assert (event.data["from_stage"], event.data["to_stage"]) == ("75%", "50%")
    assert (event.data["traffic_percentage_before"], event.data["traffic_percentage"]) == (75, 50)
    [breach] = event.data["breaches"]
    assert (breach["criterion_id"], breach["level"], breach["action"]) == (
        rule.pk,
        "warning",
        "step_back",
    )
    assert CheckResult.objects.get().run.action.startswith("step_back")

    clock.shift(MINUTE)  # the same breach, measured again at 50 %: not a second step back
    assert run_checks().stepped_back == []
    release.refresh_from_db()
    assert release.traffic_percentage == 50

    clock.shift(MINUTE)  # it passes: the episode ends
    run_checks()
    clock.shift(MINUTE)  # a new breach at the lower stage: 50 → 25
    assert run_checks().stepped_back == [release.pk]
    release.refresh_from_db()
    assert release.traffic_percentage == 25
    verdicts = list(CheckResult.objects.order_by("at").values_list("verdict", flat=True))
    assert verdicts == [Verdict.WARN, Verdict.WARN, Verdict.PASS, Verdict.WARN]
    assert release.events.filter(verb=EventVerb.STEPPED_BACK).count() == 2


def test_a_critical_step_back_steps_back_instead_of_rolling_back(clock, plan, production, latency):
    release = _running(plan, production, 2)
    criterion(plan, latency, critical_threshold=5, on_critical=CriticalAction.STEP_BACK)
    push(release, latency, [6.5], end=NOW, count=None)

    report = run_checks()

    assert (report.stepped_back, report.rolled_back, report.paused) == ([release.pk], [], [])
    release.refresh_from_db()
    assert (release.status, release.current_stage.name) == (ReleaseStatus.IN_PROGRESS, "50%")
    breach = release.events.get(verb=EventVerb.STEPPED_BACK).data["breaches"][0]
    assert (breach["level"], breach["value"]) == ("critical", 6.5)


def test_a_critical_step_back_at_the_first_stage_pauses_saying_why(
    clock, plan, production, latency
):
    release = _running(plan, production, 0)
    criterion(plan, latency, critical_threshold=5, on_critical=CriticalAction.STEP_BACK)
    push(release, latency, [6.5], end=NOW, count=None)

    report = run_checks()

    assert (report.paused, report.stepped_back) == ([release.pk], [])
    release.refresh_from_db()
    assert (release.status, release.traffic_percentage) == (ReleaseStatus.PAUSED, 25)
    event = release.events.get(verb=EventVerb.PAUSED)
    assert "p95_latency_seconds > 5 s" in event.reason
    assert event.reason.endswith("No earlier stage to step back to: paused instead.")
    assert event.data["breaches"][0]["action"] == "step_back"
    assert not release.events.filter(verb=EventVerb.STEPPED_BACK).exists()


def test_a_rollback_criterion_outranks_a_step_back(clock, plan, production, latency, error_rate):
    release = _running(plan, production, 2)
    criterion(plan, latency, critical_threshold=5, on_critical=CriticalAction.STEP_BACK)
    criterion(plan, error_rate, critical_threshold=0.05, on_critical=CriticalAction.ROLLBACK)
    push(release, latency, [6.5], end=NOW, count=None)
    push(release, error_rate, [0.09], end=NOW)

    report = run_checks()

    assert (report.rolled_back, report.stepped_back) == ([release.pk], [])
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK

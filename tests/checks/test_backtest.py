"""A backtest replays a criterion over past releases and reports exactly the breaches they had."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.checks.backtest import backtest
from apps.checks.models import MetricCriterion
from apps.core.actors import Actor
from apps.rollouts import transitions
from tests.checks.conftest import criterion, push
from tests.factories import PlanFactory, ServiceFactory, make_release

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
DAY = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def past_release(service, plan, production, version: str, start: datetime, minutes: list[float]):
    """A release that ran for len(minutes) minutes from `start`, one error rate per minute."""
    with time_machine.travel(start, tick=False) as clock:
        release = make_release(service=service, plan=plan, environment=production, version=version)
        transitions.start(release, actor=SYSTEM)
        clock.move_to(start + timedelta(minutes=len(minutes)))
        transitions.advance(release, actor=SYSTEM)  # the only stage: completes
    push(release, pytest.error_rate, minutes, end=start + timedelta(minutes=len(minutes)))
    return release


@pytest.fixture
def history(production, error_rate):
    pytest.error_rate = error_rate
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    plan = PlanFactory(slug="history", stages=[("all", 100, timedelta(0), False)])
    clean = [0.01] * 30
    spike = [0.01] * 10 + [0.09, 0.09] + [0.01] * 18  # two minutes: not sustained
    warned = [0.01] * 10 + [0.03] * 6 + [0.01] * 14  # six minutes above the warning
    broken = [0.01] * 20 + [0.08] * 10  # ten minutes above the critical threshold
    past_release(service, plan, production, "2.1.0", DAY, clean)
    past_release(service, plan, production, "2.2.0", DAY + timedelta(hours=1), spike)
    past_release(service, plan, production, "2.3.0", DAY + timedelta(hours=2), warned)
    past_release(service, plan, production, "2.4.0", DAY + timedelta(hours=3), broken)
    return plan


def new_rule(plan, error_rate) -> MetricCriterion:
    return criterion(
        plan,
        error_rate,
        warning_threshold=0.02,
        critical_threshold=0.05,
        for_window=timedelta(minutes=5),
        on_critical="rollback",
    )


def test_backtest_reports_exactly_the_breaches_of_each_release(history, error_rate):
    rule = new_rule(history, error_rate)

    replays = {r.release.version: r for r in backtest(rule)}

    assert [m.what for m in replays["2.1.0"].moments] == []
    assert [m.what for m in replays["2.2.0"].moments] == []
    warned = replays["2.3.0"].moments
    assert [(m.what, m.at) for m in warned] == [
        ("notify", DAY + timedelta(hours=2, minutes=15)),  # the fifth minute above 2 %
    ]
    broken = replays["2.4.0"].moments
    assert [(m.what, m.at, m.value) for m in broken] == [
        ("rollback", DAY + timedelta(hours=3, minutes=25), pytest.approx(0.08)),
    ]
    assert replays["2.1.0"].evaluations == 30
    assert replays["2.1.0"].outcome == "no breach"
    assert replays["2.3.0"].outcome == "would warn"
    assert replays["2.4.0"].outcome == "would roll back"


def test_backtest_an_unsaved_criterion(history, error_rate):
    # Tighter: above 7.5 % for a single minute pauses.
    unsaved = MetricCriterion(
        plan=history, metric=error_rate, critical_threshold=0.075, on_critical="pause"
    )

    replays = {r.release.version: r for r in backtest(unsaved)}

    assert MetricCriterion.objects.count() == 0
    assert replays["2.2.0"].outcome == "would pause"  # the one-minute spike of 9 % now counts
    assert replays["2.2.0"].moments[-1].at == DAY + timedelta(hours=1, minutes=11)
    assert replays["2.4.0"].outcome == "would pause"
    assert replays["2.4.0"].moments[-1].at == DAY + timedelta(hours=3, minutes=21)
    assert replays["2.1.0"].outcome == replays["2.3.0"].outcome == "no breach"


def test_command_prints_the_replay(history, error_rate):
    rule = new_rule(history, error_rate)
    out = io.StringIO()

    call_command("backtest_criterion", str(rule.pk), "--releases", "2", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Backtest of error_rate > 5 % (on critical: rollback) over 2")
    assert lines[1].startswith(
        "ai-orchestra 2.4.0 → production (completed): would roll back — 25 evaluations"
    )
    assert lines[2].startswith("  2026-11-01 13:25 would roll back (fail, 8 %)")
    assert lines[3].startswith("ai-orchestra 2.3.0 → production (completed): would warn")
    assert lines[4].startswith("  2026-11-01 12:15 would notify (warn, 3 %)")
    assert len(lines) == 5


def test_command_refuses_an_unknown_criterion(db):
    with pytest.raises(CommandError, match="No metric criterion 404"):
        call_command("backtest_criterion", "404")

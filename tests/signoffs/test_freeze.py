"""Change-freeze windows: weekly in a time zone across daylight saving, one-off, scoped; start and
advance are blocked, overrides are recorded, pause and rollback never are."""

from __future__ import annotations

from datetime import datetime, time

import pytest
import time_machine
from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.rollouts import gate, transitions
from apps.rollouts.transitions import TransitionError
from apps.signoffs.choices import FreezeRecurrence, Weekday
from apps.signoffs.models import FreezeWindow
from tests.factories import EnvironmentFactory, make_release

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


def weekend_freeze(**fields: object) -> FreezeWindow:
    """Friday 16:00 – Monday 08:00, Berlin wall clock."""
    terms: dict[str, object] = {
        "name": "Weekend",
        "reason": "No deploys over the weekend",
        "recurrence": FreezeRecurrence.WEEKLY,
        "weekly_start_day": Weekday.FRIDAY,
        "weekly_start_time": time(16, 0),
        "weekly_end_day": Weekday.MONDAY,
        "weekly_end_time": time(8, 0),
        "time_zone": "Europe/Berlin",
    }
    window = FreezeWindow(**{**terms, **fields})
    window.full_clean()
    window.save()
    return window


def frozen(release) -> list[str]:
    return [b.detail for b in gate.evaluate(release).blockers if b.kind == "freeze"]


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Autumn: clocks go back on Sunday 2026-10-25; Friday is CEST (+2), Monday CET (+1).
        ("2026-10-23 13:59", False),
        ("2026-10-23 14:00", True),  # Friday 16:00 CEST
        ("2026-10-25 01:30", True),  # inside the repeated hour
        ("2026-10-26 06:30", True),  # Monday 07:30 CET: still frozen
        ("2026-10-26 07:00", False),  # Monday 08:00 CET
        # Spring: clocks go forward on Sunday 2026-03-29; Friday is CET (+1), Monday CEST (+2).
        ("2026-03-27 14:30", False),  # Friday 15:30 CET
        ("2026-03-27 15:00", True),  # Friday 16:00 CET
        ("2026-03-30 05:59", True),  # Monday 07:59 CEST
        ("2026-03-30 06:30", False),  # Monday 08:30 CEST: open again
    ],
)
def test_weekly_window_follows_the_zones_wall_clock(service, production, utc, expected):
    weekend_freeze()
    release = make_release(service=service, environment=production)
    with time_machine.travel(datetime.fromisoformat(utc + "+00:00"), tick=False):
        assert bool(frozen(release)) is expected
        if expected:
            with pytest.raises(TransitionError) as refused:
                transitions.start(release, actor=SYSTEM)
            assert [b.kind for b in refused.value.blockers] == ["freeze"]
        else:
            transitions.start(release, actor=SYSTEM)
            assert release.status == ReleaseStatus.IN_PROGRESS


def test_the_blocker_says_until_when_in_the_zones_time(service, production):
    weekend_freeze()
    release = make_release(service=service, environment=production)
    with time_machine.travel("2026-10-24 12:00:00+00:00", tick=False):
        assert frozen(release) == [
            "Change freeze 'Weekend' until Mon 2026-10-26 08:00 Europe/Berlin: "
            "No deploys over the weekend"
        ]


def test_advance_is_blocked_override_recorded_pause_and_rollback_never(
    service, production, rita_actor
):
    weekend_freeze()
    with time_machine.travel("2026-10-23 10:00:00+00:00", tick=False) as clock:
        release = make_release(service=service, environment=production)
        transitions.start(release, actor=rita_actor)
        staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
        other = make_release(service=service, environment=staging)
        transitions.start(other, actor=rita_actor)
        clock.move_to("2026-10-24 10:00:00+00:00")

        with pytest.raises(TransitionError) as refused:
            transitions.advance(release, actor=rita_actor)
        assert "Change freeze 'Weekend'" in refused.value.message

        transitions.advance(release, actor=rita_actor, force=True, reason="Hotfix for outage")
        override = release.events.get(verb=EventVerb.GATE_OVERRIDDEN)
        assert override.reason == "Hotfix for outage"
        assert [b["kind"] for b in override.data["blockers"]] == ["freeze"]
        assert release.current_stage.name == "quarter"

        transitions.pause(release, actor=rita_actor, reason="error spike")
        transitions.rollback(release, actor=rita_actor, reason="error spike")
        assert release.status == ReleaseStatus.ROLLED_BACK
        transitions.rollback(other, actor=Actor.system("tick"), reason="critical breach")
        assert other.status == ReleaseStatus.ROLLED_BACK


def test_a_paused_release_resumes_during_a_freeze(service, production, rita_actor):
    weekend_freeze()
    with time_machine.travel("2026-10-23 10:00:00+00:00", tick=False) as clock:
        release = make_release(service=service, environment=production)
        transitions.start(release, actor=rita_actor)
        transitions.pause(release, actor=rita_actor)
        clock.move_to("2026-10-24 10:00:00+00:00")
        transitions.resume(release, actor=rita_actor)  # holds traffic where it is
        assert release.status == ReleaseStatus.IN_PROGRESS


def test_windows_apply_only_to_their_services_and_environments(service, other_service, production):
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    billing_only = weekend_freeze()
    billing_only.services.set([other_service])
    prod_only = weekend_freeze(name="Prod weekend")
    prod_only.environments.set([production])
    with time_machine.travel("2026-10-24 12:00:00+00:00", tick=False):
        ours_prod = make_release(service=service, environment=production)
        ours_staging = make_release(service=service, environment=staging)
        billing_staging = make_release(service=other_service, environment=staging)
        assert [d.split("'")[1] for d in frozen(ours_prod)] == ["Prod weekend"]
        assert frozen(ours_staging) == []
        assert [d.split("'")[1] for d in frozen(billing_staging)] == ["Weekend"]


def test_one_off_and_disabled_windows(service, production):
    window = FreezeWindow.objects.create(
        name="Black Friday",
        recurrence=FreezeRecurrence.ONE_OFF,
        starts_at=datetime.fromisoformat("2026-11-27 00:00:00+00:00"),
        ends_at=datetime.fromisoformat("2026-11-30 06:00:00+00:00"),
    )
    release = make_release(service=service, environment=production)
    with time_machine.travel("2026-11-26 23:59:00+00:00", tick=False) as clock:
        assert frozen(release) == []
        clock.move_to("2026-11-28 12:00:00+00:00")
        assert frozen(release) == ["Change freeze 'Black Friday' until Mon 2026-11-30 06:00 UTC"]
        window.enabled = False
        window.save()
        assert frozen(release) == []
        window.enabled = True
        window.save()
        clock.move_to("2026-11-30 06:00:00+00:00")
        assert frozen(release) == []


def test_a_window_within_one_day(service, production):
    FreezeWindow.objects.create(
        name="Business review",
        recurrence=FreezeRecurrence.WEEKLY,
        weekly_start_day=Weekday.MONDAY,
        weekly_start_time=time(9, 0),
        weekly_end_day=Weekday.MONDAY,
        weekly_end_time=time(11, 0),
        time_zone="America/New_York",
    )
    release = make_release(service=service, environment=production)
    with time_machine.travel("2026-11-02 13:59:00+00:00", tick=False) as clock:  # 08:59 EST
        assert frozen(release) == []
        clock.move_to("2026-11-02 14:00:00+00:00")
        assert frozen(release) != []
        clock.move_to("2026-11-02 16:00:00+00:00")
        assert frozen(release) == []
        clock.move_to("2026-11-03 15:00:00+00:00")  # Tuesday
        assert frozen(release) == []


def test_bad_windows_are_refused_with_the_field_named():
    with pytest.raises(ValidationError) as refused:
        FreezeWindow(
            name="x", recurrence=FreezeRecurrence.WEEKLY, time_zone="Mars/Olympus"
        ).full_clean()
    errors = refused.value.message_dict
    assert "weekly_start_day" in errors
    assert "'Mars/Olympus' is not a time zone name" in errors["time_zone"][0]

    with pytest.raises(ValidationError) as refused:
        FreezeWindow(
            name="x",
            starts_at=datetime.fromisoformat("2026-11-02 10:00:00+00:00"),
            ends_at=datetime.fromisoformat("2026-11-02 09:00:00+00:00"),
        ).full_clean()
    assert refused.value.message_dict["ends_at"] == ["The end must come after the start."]

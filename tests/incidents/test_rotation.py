"""On-call rotations: hand-offs keep their wall-clock time across daylight saving; overrides win."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from apps.incidents.choices import Weekday
from apps.incidents.models import RotationOverride
from tests.incidents.conftest import make_rotation

pytestmark = pytest.mark.django_db


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def berlin(people):
    """Weekly, Monday 09:00 Berlin; Ada's first turn starts Monday 2026-03-16."""
    return make_rotation(
        "Platform on-call",
        [people["ada"], people["ben"]],
        zone="Europe/Berlin",
        weekday=Weekday.MONDAY,
        at=time(9, 0),
        start=date(2026, 3, 14),  # a Saturday: the first hand-off is the Monday after
    )


def test_weekly_handoffs_keep_9_am_local_across_the_spring_change(berlin, people):
    # Berlin moves from CET (UTC+1) to CEST (UTC+2) on Sunday 2026-03-29.
    handoffs = berlin.handoffs(utc("2026-03-16 07:00"), count=3)
    assert [(h.at, h.contact) for h in handoffs] == [
        (utc("2026-03-16 08:00"), people["ada"]),  # 09:00 CET
        (utc("2026-03-23 08:00"), people["ben"]),  # 09:00 CET
        (utc("2026-03-30 07:00"), people["ada"]),  # 09:00 CEST: an hour earlier in UTC
    ]
    # Monday after the change, 08:30 local is still Ben's shift; 09:00 local is Ada's.
    assert berlin.on_call_at(utc("2026-03-30 06:30")) == people["ben"]
    assert berlin.on_call_at(utc("2026-03-30 07:00")) == people["ada"]
    # Before its first hand-off the rotation has nobody on call.
    assert berlin.on_call_at(utc("2026-03-16 07:59")) is None


def test_and_across_the_autumn_change(berlin, people):
    # CEST → CET on Sunday 2026-10-25: the Monday hand-off moves from 07:00 to 08:00 UTC.
    handoffs = berlin.handoffs(utc("2026-10-19 06:00"), count=2)
    assert [h.at for h in handoffs] == [utc("2026-10-19 07:00"), utc("2026-10-26 08:00")]
    assert berlin.on_call_at(utc("2026-10-26 07:30")) == berlin.on_call_at(utc("2026-10-25 12:00"))


def test_a_handoff_time_the_clocks_skip_or_repeat(people):
    # Daily at 02:30 New York: on 2026-03-08 02:30 does not exist (02:00 → 03:00 EDT), and on
    # 2026-11-01 01:30 happens twice. The skipped time hands off at 03:30 EDT; the repeated one
    # at its first occurrence (EDT).
    skipped = make_rotation(
        "Nights",
        [people["ada"], people["ben"]],
        zone="America/New_York",
        at=time(2, 30),
        days=1,
        start=date(2026, 3, 2),
        weekday=Weekday.MONDAY,
    )
    handoffs = skipped.handoffs(utc("2026-03-07 06:00"), count=3)
    assert [h.at for h in handoffs] == [
        utc("2026-03-07 07:30"),  # 02:30 EST
        utc("2026-03-08 07:30"),  # "02:30" on the spring-forward night = 03:30 EDT
        utc("2026-03-09 06:30"),  # 02:30 EDT
    ]
    repeated = make_rotation(
        "Late",
        [people["ada"], people["ben"]],
        zone="America/New_York",
        at=time(1, 30),
        days=1,
        start=date(2026, 10, 26),
        weekday=Weekday.MONDAY,
    )
    handoffs = repeated.handoffs(utc("2026-10-31 04:00"), count=3)
    assert [h.at for h in handoffs] == [
        utc("2026-10-31 05:30"),  # 01:30 EDT
        utc("2026-11-01 05:30"),  # the first 01:30 (EDT), not the second (EST, 06:30 UTC)
        utc("2026-11-02 06:30"),  # 01:30 EST
    ]


def test_an_override_takes_the_rotation_for_its_range_then_hands_back(berlin, people):
    # Ada's week of 2026-03-30 (after the change); Sam covers Wednesday to Friday.
    RotationOverride.objects.create(
        rotation=berlin,
        contact=people["sam"],
        starts_at=utc("2026-04-01 07:00"),
        ends_at=utc("2026-04-03 16:00"),
        reason="Ada at a conference",
    )
    assert berlin.on_call_at(utc("2026-04-01 06:59")) == people["ada"]
    assert berlin.on_call_at(utc("2026-04-02 12:00")) == people["sam"]
    assert berlin.on_call_at(utc("2026-04-03 16:00")) == people["ada"]
    handoffs = berlin.handoffs(utc("2026-03-31 00:00"), count=4)
    assert [(h.at, h.contact.name, h.override is not None) for h in handoffs] == [
        (utc("2026-04-01 07:00"), "Sam", True),
        (utc("2026-04-03 16:00"), "Ada", False),
        (utc("2026-04-06 07:00"), "Ben", False),
        (utc("2026-04-13 07:00"), "Ada", False),
    ]


def test_the_latest_override_wins_where_two_overlap(berlin, people):
    start = utc("2026-04-01 07:00")
    RotationOverride.objects.create(
        rotation=berlin, contact=people["sam"], starts_at=start, ends_at=start + timedelta(days=2)
    )
    RotationOverride.objects.create(
        rotation=berlin,
        contact=people["pia"],
        starts_at=start + timedelta(hours=12),
        ends_at=start + timedelta(hours=14),
    )
    assert berlin.on_call_at(start + timedelta(hours=13)) == people["pia"]
    assert berlin.on_call_at(start + timedelta(hours=15)) == people["sam"]


def test_a_single_member_never_hands_off(people):
    solo = make_rotation("Solo", [people["ada"]])
    assert solo.on_call_at(utc("2026-05-05 12:00")) == people["ada"]
    assert solo.handoffs(utc("2026-05-05 12:00"), count=4) == []

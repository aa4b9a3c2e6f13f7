"""When reports are due and which period they cover, on the subscriber's wall clock.

Periods are calendar days and ISO weeks (Monday to Monday) in a time zone, so a week that spans a
daylight-saving change is 167 or 169 hours long and a report due "Monday 09:00 Europe/Berlin"
arrives at 09:00 local time on both sides of the change.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.core.exceptions import ValidationError

from .choices import Frequency


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as 'Europe/Berlin'.")


def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def local_midnight(day: date, tz: zoneinfo.ZoneInfo) -> datetime:
    """The instant (UTC) a local day begins."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """A report's span: [start, end) in UTC, named by its local days."""

    kind: str
    start: datetime
    end: datetime
    time_zone: str

    @property
    def first_day(self) -> date:
        return self.start.astimezone(zone(self.time_zone)).date()

    @property
    def last_day(self) -> date:
        return (self.end.astimezone(zone(self.time_zone)) - timedelta(seconds=1)).date()

    def previous(self) -> Period:
        return period_containing(self.kind, self.first_day - timedelta(days=1), self.time_zone)

    @property
    def label(self) -> str:
        """ "Week 47, 16–22 Nov 2026" or "Mon 16 Nov 2026"."""
        first, last = self.first_day, self.last_day
        if self.kind == Frequency.DAILY:
            return f"{first:%a} {first.day} {first:%b %Y}"
        week = first.isocalendar().week
        if first.month == last.month:
            span = f"{first.day}–{last.day} {last:%b %Y}"
        elif first.year == last.year:
            span = f"{first.day} {first:%b} – {last.day} {last:%b %Y}"
        else:
            span = f"{first.day} {first:%b %Y} – {last.day} {last:%b %Y}"
        return f"Week {week}, {span}"

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "time_zone": self.time_zone,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "label": self.label,
        }


def period_containing(kind: str, day: date, time_zone: str) -> Period:
    """The local day, or the ISO week (Monday first), that contains `day`."""
    tz = zone(time_zone)
    if kind == Frequency.DAILY:
        first, days = day, 1
    elif kind == Frequency.WEEKLY:
        first, days = day - timedelta(days=day.weekday()), 7
    else:
        raise ValidationError(f"Unknown period {kind!r}: say daily or weekly.")
    return Period(
        kind=kind,
        start=local_midnight(first, tz),
        end=local_midnight(first + timedelta(days=days), tz),
        time_zone=time_zone,
    )


def last_complete_period(kind: str, at: datetime, time_zone: str) -> Period:
    """The latest day or week that had ended by `at`: what a report sent at `at` covers."""
    today = at.astimezone(zone(time_zone)).date()
    return period_containing(kind, today, time_zone).previous()


def next_due(kind: str, *, weekday: int, hour: int, time_zone: str, after: datetime) -> datetime:
    """The first local `hour`:00 (on `weekday` for weekly reports) strictly after `after`, in UTC.

    A wall-clock hour skipped by a spring-forward change falls an hour later; one repeated by a
    fall-back change is taken at its first occurrence, so it fires once.
    """
    tz = zone(time_zone)
    local_day = after.astimezone(tz).date()
    for offset in range(9):
        day = local_day + timedelta(days=offset)
        if kind == Frequency.WEEKLY and day.weekday() != weekday:
            continue
        candidate = datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC)
        if candidate > after:
            return candidate
    raise AssertionError("a due time always exists within 8 days")  # pragma: no cover

"""Template filters of the reports: durations, percentages, look-ups (see formatting.py)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from django import template

from .. import formatting

register = template.Library()


@register.filter
def duration(value: float | None) -> str:
    return formatting.duration(value)


@register.filter
def percent(value: float | None) -> str:
    return formatting.percent(value)


@register.filter
def per_day(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}/day"


@register.filter
def lookup(mapping: dict[str, Any] | None, key: str) -> Any:
    return (mapping or {}).get(key, "")


@register.filter
def when(value: str | None, time_zone: str = "") -> str:
    """An ISO timestamp from the report's JSON in the report's zone: "2026-11-16 09:30 CET"."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value)
    if time_zone:
        moment = moment.astimezone(zoneinfo.ZoneInfo(time_zone))
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname() or ''}".strip()


@register.filter
def outcome(value: str) -> str:
    return {"confirmed": "confirmed", "false_alarm": "resumed unchanged", "undecided": "open"}.get(
        value, value
    )


@register.filter
def joined(values: list[str] | None) -> str:
    return ", ".join(values or [])

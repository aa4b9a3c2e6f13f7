"""How a report's numbers read, the same in the HTML email, the text email and the web page."""

from __future__ import annotations

from typing import Any

COUNT, PERCENT, DURATION, RATE = "count", "percent", "duration", "rate"


def duration(value: float | None) -> str:
    """Seconds as people read them: 45 s, 12 min, 3.5 h, 2.1 d."""
    if value is None:
        return "—"
    value = float(value)
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    if value < 86400 * 2:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.0f} %"


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == PERCENT:
        return percent(value)
    if unit == DURATION:
        return duration(value)
    if unit == RATE:
        return f"{value:.2f}"
    return f"{value:g}"


def change(current: float | None, previous: float | None, unit: str) -> str:
    """The change from the previous period: +2, −1.5 h, +10 pp; "new" or "" when undefined."""
    if current is None or previous is None:
        return "" if current is None and previous is None else "n/a"
    delta = current - previous
    if delta == 0:
        return "±0"
    sign = "+" if delta > 0 else "−"
    size = abs(delta)
    if unit == PERCENT:
        return f"{sign}{size * 100:.0f} pp"
    if unit == DURATION:
        return f"{sign}{duration(size)}"
    if unit == RATE:
        return f"{sign}{size:.2f}"
    return f"{sign}{size:g}"


def trend(current: float | None, previous: float | None, better: str) -> str:
    """good, bad or same: how the change reads given which direction is better."""
    if current is None or previous is None or current == previous or not better:
        return "same"
    up = current > previous
    return "good" if up == (better == "higher") else "bad"


def figure(
    key: str,
    label: str,
    current: float | None,
    previous: float | None,
    unit: str = COUNT,
    better: str = "",
) -> dict[str, Any]:
    """One line of the overview: the value, the previous period's and the change."""
    return {
        "key": key,
        "label": label,
        "unit": unit,
        "current": current,
        "previous": previous,
        "current_display": number(current, unit),
        "previous_display": number(previous, unit),
        "change_display": change(current, previous, unit),
        "trend": trend(current, previous, better),
    }

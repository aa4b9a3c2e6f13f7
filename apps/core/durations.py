"""How a length of time reads everywhere a person sees one: "45s", "12m", "2h 05m", "3d 4h".

The gate's blockers, the pages, the admin, the health answer's stale jobs and the emails all use
this. Reports' averages are not lengths of time someone waits out but statistics over many, and
keep their decimals (apps.reports.formatting.duration: "3.5 h").
"""

from __future__ import annotations

from datetime import timedelta

NONE = "—"


def format_duration(delta: timedelta | None) -> str:
    """Days and hours, hours and minutes, minutes, or under a minute seconds; "—" for none.

    A negative length (a clock a little ahead, a soak already over) reads as none left: "0s".
    """
    if delta is None:
        return NONE
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours >= 24:
        return f"{hours // 24}d {hours % 24}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m" if minutes else f"{seconds}s"

"""How a stage is named in sentences: its name and its traffic, said once.

Runbooks often name their stages by their traffic ("25%", "50 %"); "25% (25 %)" says it twice,
so such a stage is just "25 %". A named stage keeps its traffic beside it: "canary (5 %)".
Buttons and options (Stage.label), the transitions' messages, the timeline and the emails all
say a stage this way.
"""

from __future__ import annotations


def names_its_traffic(name: str, percentage: int | str) -> bool:
    """Whether the stage's name is its percentage ("25%", "25 %" for 25)."""
    return name.replace(" ", "") == f"{percentage}%"


def stage_label(name: str, percentage: int | str | None) -> str:
    """`name (N %)`, or `N %` alone when the name is that percentage already."""
    if percentage is None or percentage == "":
        return name
    if names_its_traffic(name, percentage):
        return f"{percentage} %"
    return f"{name} ({percentage} %)"

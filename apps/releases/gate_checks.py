"""The gate's checks: each app whose state can hold a release's next step registers one here.

A check is a function `(release, stage, now) -> list[Blocker]`; `stage` is the current stage
while the release runs or is paused, None while it is planned (the step is then "start"). Apps
register their checks by name in their AppConfig.ready(); apps/rollouts/gate.py runs them in
the order it names and is the only place that decides. This module sits below every feature
app, so none of them imports rollouts to take part in the gate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .choices import BlockerKind

if TYPE_CHECKING:
    from .models import Release, Stage


@dataclass(frozen=True)
class Blocker:
    """One reason the gate is red: a kind (soak, checklist, signoff, ...) and a sentence."""

    kind: BlockerKind
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "detail": self.detail}


Check = Callable[["Release", "Stage | None", datetime], list[Blocker]]

CHECKS: dict[str, Check] = {}


def register(name: str, check: Check) -> None:
    """Add a check to the gate under `name` (the gate's order lists it by that name)."""
    if CHECKS.get(name, check) is not check:
        raise ValueError(f"A gate check named {name!r} is registered already.")
    CHECKS[name] = check


def in_order(order: Sequence[str]) -> list[Check]:
    """The registered checks in `order`; a name nobody registered (app not installed) is absent.

    A registered check the order does not name is an error, not skipped: a gate that silently
    ignored a check would go green on what should hold it.
    """
    unplaced = set(CHECKS) - set(order)
    if unplaced:
        raise LookupError(f"Gate checks registered but not in the gate's order: {sorted(unplaced)}")
    return [CHECKS[name] for name in order if name in CHECKS]

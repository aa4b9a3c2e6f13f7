"""An incident's escalation timetable, frozen from its policy when escalation starts.

Editing, deleting or re-timing a policy's levels must not move an open incident: escalation
counts the rows of its timetable already paged, so a live timetable would skip a level or page
one again. What is frozen: the levels (position, delay, severity condition, the contacts named
and the rotation), the repeat rule and the escalate-while rule. What stays live: who a rotation
puts on call at the moment of paging, and each contact's current address and active flag
(contacts are frozen by id; a contact deleted since is not paged).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..choices import EscalateWhile, Severity

if TYPE_CHECKING:
    from .oncall import EscalationPolicy

FORMAT = 1  # bump when the stored shape changes (and migrate the stored snapshots)


def severity_reaches(severity: str, min_severity: str) -> bool:
    """Whether an incident of `severity` is paged by a level asking for `min_severity`."""
    return not min_severity or Severity.rank(severity) <= Severity.rank(min_severity)


def condition_text(min_severity: str) -> str:
    """A level's severity condition in words: "every incident", "SEV1 only", "SEV2 or worse"."""
    if not min_severity:
        return "every incident"
    if min_severity == Severity.SEV1:
        return "SEV1 only"
    return f"{min_severity.upper()} or worse"


def rule_text(escalate_while: str) -> str:
    """The escalate-while rule in a sentence's words."""
    if escalate_while == EscalateWhile.UNRESOLVED:
        return "until the incident is resolved"
    return "until someone acknowledges (as PagerDuty)"


@dataclass(frozen=True)
class FrozenLevel:
    """One level as it was when the incident's escalation started."""

    position: int
    after_minutes: int
    min_severity: str
    contact_ids: tuple[int, ...]
    contact_names: tuple[str, ...]  # as at freezing, for display only; paging reads the rows
    rotation_id: int | None
    rotation_name: str

    @property
    def label(self) -> str:
        return f"L{self.position}"

    def applies_to(self, severity: str) -> bool:
        return severity_reaches(severity, self.min_severity)

    def condition_display(self) -> str:
        return condition_text(self.min_severity)

    def who_display(self) -> str:
        who = list(self.contact_names)
        if self.rotation_name:
            who.append(f"on call in {self.rotation_name}")
        return ", ".join(who) or "nobody"


@dataclass(frozen=True)
class EscalationStep:
    """One row of a timetable: a level in a repeat round, due so long after escalation began."""

    number: int  # 1-based across rounds: what Incident.escalation_step counts
    round: int  # 0 for the first pass, 1 for the first repeat, ...
    level: FrozenLevel
    due_after: timedelta


@dataclass(frozen=True)
class Timetable:
    """A policy's levels and rules, frozen; `steps()` is the order in which they are paged."""

    policy_id: int | None
    policy_name: str
    escalate_while: str
    repeat_times: int
    repeat_after_minutes: int
    levels: tuple[FrozenLevel, ...]
    frozen_at: str

    @classmethod
    def of(cls, policy: EscalationPolicy, now: datetime) -> Timetable:
        """The policy as it is now (its levels, their contacts and rotation: 1 + 2 queries)."""
        levels = policy.ordered_levels()
        return cls(
            policy_id=policy.pk,
            policy_name=policy.name,
            escalate_while=policy.escalate_while,
            repeat_times=policy.repeat_times,
            repeat_after_minutes=policy.repeat_after_minutes,
            levels=tuple(
                FrozenLevel(
                    position=level.position,
                    after_minutes=level.after_minutes,
                    min_severity=level.min_severity,
                    contact_ids=tuple(c.pk for c in level.contacts.all()),
                    contact_names=tuple(c.name for c in level.contacts.all()),
                    rotation_id=level.rotation_id,
                    rotation_name=level.rotation.name if level.rotation_id else "",
                )
                for level in levels
            ),
            frozen_at=now.isoformat(),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timetable:
        return cls(
            policy_id=data["policy"]["id"],
            policy_name=data["policy"]["name"],
            escalate_while=data["escalate_while"],
            repeat_times=data["repeat_times"],
            repeat_after_minutes=data["repeat_after_minutes"],
            levels=tuple(
                FrozenLevel(
                    position=level["position"],
                    after_minutes=level["after_minutes"],
                    min_severity=level["min_severity"],
                    contact_ids=tuple(c["id"] for c in level["contacts"]),
                    contact_names=tuple(c["name"] for c in level["contacts"]),
                    rotation_id=(level["rotation"] or {}).get("id"),
                    rotation_name=(level["rotation"] or {}).get("name", ""),
                )
                for level in data["levels"]
            ),
            frozen_at=data["frozen_at"],
        )

    def as_json(self) -> dict[str, Any]:
        """The stored shape (also what the API shows as the incident's `escalation`)."""
        return {
            "format": FORMAT,
            "policy": {"id": self.policy_id, "name": self.policy_name},
            "escalate_while": self.escalate_while,
            "repeat_times": self.repeat_times,
            "repeat_after_minutes": self.repeat_after_minutes,
            "frozen_at": self.frozen_at,
            "levels": [
                {
                    "position": level.position,
                    "after_minutes": level.after_minutes,
                    "min_severity": level.min_severity,
                    "contacts": [
                        {"id": pk, "name": name}
                        for pk, name in zip(level.contact_ids, level.contact_names, strict=True)
                    ],
                    "rotation": (
                        {"id": level.rotation_id, "name": level.rotation_name}
                        if level.rotation_id
                        else None
                    ),
                }
                for level in self.levels
            ],
        }

    def rule_text(self) -> str:
        return rule_text(self.escalate_while)

    def steps(self) -> list[EscalationStep]:
        """The whole timetable, repeat rounds included, in the order it is paged."""
        if not self.levels:
            return []
        cycle = timedelta(minutes=self.levels[-1].after_minutes + self.repeat_after_minutes)
        steps: list[EscalationStep] = []
        for round_ in range(self.repeat_times + 1):
            for level in self.levels:
                steps.append(
                    EscalationStep(
                        number=len(steps) + 1,
                        round=round_,
                        level=level,
                        due_after=round_ * cycle + timedelta(minutes=level.after_minutes),
                    )
                )
        return steps

    def step(self, number: int) -> EscalationStep | None:
        """Row `number` (1-based) of the timetable; None past its end."""
        steps = self.steps()
        return steps[number - 1] if 0 < number <= len(steps) else None

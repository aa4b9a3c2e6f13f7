"""What re-importing a runbook would change: the new draft against the service's last import.

Compared part by part, each by what names it: stages by position, criteria by metric and side,
escalation levels by position, checklist items by checklist and text. Shown before saving (admin
review page, API preview), so nobody saves a changed runbook without seeing what moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.releases.models import Service

from .draft import Draft
from .models import RunbookImport


@dataclass
class Change:
    part: str  # "stage" | "criterion" | "escalation level" | "checklist item"
    change: str  # "added" | "removed" | "changed"
    what: str
    before: str = ""
    after: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "part": self.part,
            "change": self.change,
            "what": self.what,
            "before": self.before,
            "after": self.after,
        }

    def __str__(self) -> str:
        if self.change == "changed":
            return f"{self.part} {self.what}: {self.before} → {self.after}"
        return f"{self.part} {self.change}: {self.what}"


@dataclass
class Diff:
    previous: RunbookImport | None
    changes: list[Change] = field(default_factory=list)

    def as_json(self) -> dict[str, Any] | None:
        if self.previous is None:
            return None
        return {
            "previous": {
                "id": self.previous.pk,
                "source": self.previous.source,
                "created_at": self.previous.created_at.isoformat(),
                "created_by": self.previous.created_by,
            },
            "changes": [change.as_json() for change in self.changes],
        }


def _stage(s: dict[str, Any]) -> str:
    env = f" [{s['environment']}]" if s.get("environment") else ""
    return f"{s['name']}{env} {s['traffic_percentage']}%, soak {s['min_soak_seconds']}s"


def _criterion(c: dict[str, Any]) -> str:
    return f"{c['threshold']}{c.get('unit', '')} → {c['action']} ({c['severity']})"


def _level(lv: dict[str, Any]) -> str:
    after = "?" if lv["after_minutes"] is None else f"{lv['after_minutes']} min"
    only = " (critical only)" if lv.get("critical_only") else ""
    return f"after {after}: {', '.join(lv['targets'])}{only}"


def _compare(
    part: str,
    old: dict[Any, str],
    new: dict[Any, str],
    label: Any,
) -> list[Change]:
    changes = []
    for key, text in new.items():
        if key not in old:
            changes.append(Change(part, "added", f"{label(key)} {text}".strip()))
        elif old[key] != text:
            changes.append(Change(part, "changed", str(label(key)), old[key], text))
    for key, text in old.items():
        if key not in new:
            changes.append(Change(part, "removed", f"{label(key)} {text}".strip()))
    return changes


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Changes from one as_json() draft to another."""
    changes = _compare(
        "stage",
        {n: _stage(s) for n, s in enumerate(old["plan"]["stages"], start=1)},
        {n: _stage(s) for n, s in enumerate(new["plan"]["stages"], start=1)},
        lambda n: f"{n}:",
    )

    def criteria(draft: dict[str, Any]) -> dict[Any, str]:
        found: dict[Any, str] = {}
        for c in draft["criteria"]:
            key = (c["metric"], c["operator"], c["severity"])
            found.setdefault(key, _criterion(c))
        return found

    changes += _compare(
        "criterion", criteria(old), criteria(new), lambda k: f"{k[0]} {k[1]} ({k[2]})"
    )
    changes += _compare(
        "escalation level",
        {lv["position"]: _level(lv) for lv in old["escalation"]["levels"]},
        {lv["position"]: _level(lv) for lv in new["escalation"]["levels"]},
        lambda n: f"L{n}",
    )

    def items(draft: dict[str, Any]) -> dict[Any, str]:
        return {
            (c["name"], i["text"]): ""
            for c in draft["checklists"]
            for s in c["sections"]
            for i in s["items"]
        }

    changes += _compare("checklist item", items(old), items(new), lambda k: f"{k[0]}: {k[1]}")
    return changes


def against_last_import(draft: Draft, service: Service | None) -> Diff:
    """The draft against the service's last import (no previous import: nothing to compare)."""
    if service is None:
        return Diff(None)
    previous = RunbookImport.objects.filter(service=service).first()
    if previous is None:
        return Diff(None)
    return Diff(previous, compare(previous.draft, draft.as_json()))

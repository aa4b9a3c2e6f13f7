"""What an import drafts from a runbook, before anyone reviews it: plain data with source lines.

`Draft.as_json()` is the documented `--dry-run --json` object (every key present, even empty);
`to_payload()`/`from_payload()` carry the whole draft (source quotes included) from a preview to
the save, through the admin's signed form or an API call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from apps.checklists.drafts import DetectedChecklist


@dataclass
class StageDraft:
    """A stage of the plan: traffic and minimum soak, in which environment."""

    name: str
    environment: str
    traffic_percentage: int
    min_soak_seconds: int
    line: int
    quote: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "environment": self.environment,
            "traffic_percentage": self.traffic_percentage,
            "min_soak_seconds": self.min_soak_seconds,
            "line": self.line,
        }


@dataclass
class PlanDraft:
    name: str
    stages: list[StageDraft] = field(default_factory=list)


@dataclass
class CriterionDraft:
    """A threshold on a metric: `operator` is the bad side (`>` 2 means above 2 is a breach)."""

    metric: str
    operator: str
    threshold: float | None
    unit: str
    for_seconds: int
    action: str  # apps.checks.choices.CriticalAction / WarningAction values
    severity: str  # "critical" or "warning": which threshold of the criterion it is
    source_kind: str  # "push", "prometheus" or "sql"
    query: str
    line: int
    quote: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "operator": self.operator,
            "threshold": self.threshold,
            "unit": self.unit,
            "for_seconds": self.for_seconds,
            "action": self.action,
            "severity": self.severity,
            "source": {"kind": self.source_kind, "query": self.query},
            "line": self.line,
        }


@dataclass
class LevelDraft:
    """An escalation level: after how many minutes, who (names or roles, placeholders kept)."""

    position: int
    after_minutes: int | None
    targets: list[str]
    critical_only: bool
    line: int
    quote: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "after_minutes": self.after_minutes,
            "targets": list(self.targets),
            "critical_only": self.critical_only,
            "line": self.line,
        }


@dataclass
class ContactDraft:
    """A contact the runbook lists ("Product Manager: [Name] - [Email]"): placeholders kept."""

    role: str
    name: str
    email: str
    phone: str
    line: int
    quote: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "line": self.line,
        }


@dataclass
class EscalationDraft:
    levels: list[LevelDraft] = field(default_factory=list)
    contacts: list[ContactDraft] = field(default_factory=list)


@dataclass
class Draft:
    """Everything one runbook holds: checklists, plan, criteria, escalation, and notes."""

    source: str
    title: str
    notes: list[str] = field(default_factory=list)
    checklists: list[DetectedChecklist] = field(default_factory=list)
    plan: PlanDraft = field(default_factory=lambda: PlanDraft(""))
    criteria: list[CriterionDraft] = field(default_factory=list)
    escalation: EscalationDraft = field(default_factory=EscalationDraft)

    @property
    def is_empty(self) -> bool:
        return not (self.checklists or self.plan.stages or self.criteria or self.escalation.levels)

    def as_json(self) -> dict[str, Any]:
        """The one object `import_runbook --dry-run --json` prints and the API's preview returns."""
        return {
            "title": self.title,
            "notes": list(self.notes),
            "checklists": [checklist.as_json() for checklist in self.checklists],
            "plan": {
                "name": self.plan.name,
                "stages": [stage.as_json() for stage in self.plan.stages],
            },
            "criteria": [criterion.as_json() for criterion in self.criteria],
            "escalation": {
                "levels": [level.as_json() for level in self.escalation.levels],
                "contacts": [contact.as_json() for contact in self.escalation.contacts],
            },
        }

    def summary(self) -> list[str]:
        """The draft in lines for a terminal: each thing found with its source line."""
        lines = [f"Plan {self.plan.name!r}:" if self.plan.stages else "Plan: no stages found."]
        for stage in self.plan.stages:
            lines.append(
                f"  line {stage.line}: {stage.name} [{stage.environment}] "
                f"{stage.traffic_percentage}%, soak {stage.min_soak_seconds}s"
            )
        lines.append(f"Criteria: {len(self.criteria)}")
        for c in self.criteria:
            lines.append(
                f"  line {c.line}: {c.metric} {c.operator} {c.threshold}{c.unit} "
                f"-> {c.action} ({c.severity}, {c.source_kind})"
            )
        lines.append(f"Escalation levels: {len(self.escalation.levels)}")
        for level in self.escalation.levels:
            after = "?" if level.after_minutes is None else f"{level.after_minutes} min"
            only = " (critical only)" if level.critical_only else ""
            lines.append(
                f"  line {level.line}: L{level.position} after {after}: "
                f"{', '.join(level.targets)}{only}"
            )
        for checklist in self.checklists:
            lines.append(f"Checklist {checklist.name} [{checklist.kind}]: {checklist.item_count}")
            for section in checklist.sections:
                for item in section.items:
                    key = f"  (key: {item.key})" if item.key else ""
                    lines.append(f"  line {item.line}: [ ] {item.text}{key}")
        return lines

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Draft:
        return cls(
            source=data["source"],
            title=data["title"],
            notes=list(data.get("notes", [])),
            checklists=[DetectedChecklist.from_payload(c) for c in data.get("checklists", [])],
            plan=PlanDraft(data["plan"]["name"], [StageDraft(**s) for s in data["plan"]["stages"]]),
            criteria=[CriterionDraft(**c) for c in data.get("criteria", [])],
            escalation=EscalationDraft(
                [LevelDraft(**lv) for lv in data["escalation"]["levels"]],
                [ContactDraft(**c) for c in data["escalation"].get("contacts", [])],
            ),
        )


class DraftShapeError(ValueError):
    """An edited draft (API body, admin form) that is not in the documented shape."""


def _get(data: Any, key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if not isinstance(data, dict):
        raise DraftShapeError(f"{where} must be an object.")
    if key not in data:
        if default is not ...:
            return default
        raise DraftShapeError(f"{where}: {key!r} is missing.")
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if value is None and default is None:
        return None
    if isinstance(value, bool) and kind in (int, float):
        raise DraftShapeError(f"{where}: {key!r} must be a number.")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DraftShapeError(f"{where}: {key!r} must be {names}.")
    return value


def from_json(data: Any, *, source: str) -> Draft:
    """A reviewed draft in as_json()'s shape back to a Draft (what the reviewer kept and edited);
    DraftShapeError names the first part that is not in that shape."""
    from apps.checklists.drafts import DetectedItem, DetectedSection

    title = _get(data, "title", str, "the draft")
    plan = _get(data, "plan", dict, "the draft")
    stages = []
    for n, s in enumerate(_get(plan, "stages", list, "plan"), start=1):
        where = f"plan.stages[{n}]"
        stages.append(
            StageDraft(
                name=_get(s, "name", str, where),
                environment=_get(s, "environment", str, where, ""),
                traffic_percentage=_get(s, "traffic_percentage", int, where),
                min_soak_seconds=_get(s, "min_soak_seconds", int, where, 0),
                line=_get(s, "line", int, where, 0),
            )
        )
    criteria = []
    for n, c in enumerate(_get(data, "criteria", list, "the draft"), start=1):
        where = f"criteria[{n}]"
        src = _get(c, "source", dict, where, {"kind": "push", "query": ""})
        criteria.append(
            CriterionDraft(
                metric=_get(c, "metric", str, where),
                operator=_get(c, "operator", str, where),
                threshold=_get(c, "threshold", float, where, None),
                unit=_get(c, "unit", str, where, ""),
                for_seconds=_get(c, "for_seconds", int, where, 0),
                action=_get(c, "action", str, where),
                severity=_get(c, "severity", str, where, "critical"),
                source_kind=_get(src, "kind", str, f"{where}.source", "push"),
                query=_get(src, "query", str, f"{where}.source", ""),
                line=_get(c, "line", int, where, 0),
            )
        )
    escalation = _get(data, "escalation", dict, "the draft")
    levels = []
    for n, lv in enumerate(_get(escalation, "levels", list, "escalation"), start=1):
        where = f"escalation.levels[{n}]"
        targets = _get(lv, "targets", list, where)
        if not all(isinstance(t, str) for t in targets):
            raise DraftShapeError(f"{where}: 'targets' must be a list of names.")
        levels.append(
            LevelDraft(
                position=_get(lv, "position", int, where, n),
                after_minutes=_get(lv, "after_minutes", int, where, None),
                targets=targets,
                critical_only=_get(lv, "critical_only", bool, where, False),
                line=_get(lv, "line", int, where, 0),
            )
        )
    checklists = []
    for n, c in enumerate(_get(data, "checklists", list, "the draft"), start=1):
        where = f"checklists[{n}]"
        sections = []
        for m, sec in enumerate(_get(c, "sections", list, where), start=1):
            swhere = f"{where}.sections[{m}]"
            items = [
                DetectedItem(
                    text=_get(i, "text", str, f"{swhere}.items[{k}]"),
                    key=_get(i, "key", str, f"{swhere}.items[{k}]", ""),
                    required=_get(i, "required", bool, f"{swhere}.items[{k}]", True),
                    line=_get(i, "line", int, f"{swhere}.items[{k}]", 0),
                )
                for k, i in enumerate(_get(sec, "items", list, swhere), start=1)
            ]
            if items:
                sections.append(DetectedSection(_get(sec, "name", str, swhere), items))
        if sections:
            name = _get(c, "name", str, where)
            checklists.append(
                DetectedChecklist(
                    name=name, heading=name, kind=_get(c, "kind", str, where), sections=sections
                )
            )
    return Draft(
        source=source,
        title=title,
        notes=[n for n in _get(data, "notes", list, "the draft", []) if isinstance(n, str)],
        checklists=checklists,
        plan=PlanDraft(_get(plan, "name", str, "plan", title), stages),
        criteria=criteria,
        escalation=EscalationDraft(levels, []),
    )

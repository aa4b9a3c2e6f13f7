"""A checklist not saved yet (drafted from a runbook, edited in a review): its sections and items.

Plain data, so the runbook import (apps.runbooks) can hand drafts to save_template_version without
this app knowing where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DetectedItem:
    """One item: its text, the automated-check key CI reports it by ("" if manual), its line."""

    text: str
    key: str = ""
    required: bool = True
    line: int = 0


@dataclass
class DetectedSection:
    """A named group of items (a runbook's sub-heading)."""

    name: str
    items: list[DetectedItem] = field(default_factory=list)


@dataclass
class DetectedChecklist:
    """A checklist found in the runbook: a proposed template name, kind and its sections."""

    name: str
    heading: str
    kind: str
    sections: list[DetectedSection] = field(default_factory=list)
    line: int = 0

    @property
    def item_count(self) -> int:
        return sum(len(section.items) for section in self.sections)

    def as_json(self) -> dict[str, Any]:
        """The documented shape: {"name", "kind", "sections": [{"name", "items"}]}."""
        return {
            "name": self.name,
            "kind": self.kind,
            "sections": [
                {
                    "name": section.name,
                    "items": [
                        {"text": item.text, "key": item.key, "line": item.line}
                        for item in section.items
                    ],
                }
                for section in self.sections
            ],
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> DetectedChecklist:
        return cls(
            name=data["name"],
            heading=data.get("heading", data["name"]),
            kind=data["kind"],
            line=data.get("line", 0),
            sections=[
                DetectedSection(
                    s["name"],
                    [
                        DetectedItem(
                            text=i["text"],
                            key=i.get("key", ""),
                            required=i.get("required", True),
                            line=i.get("line", 0),
                        )
                        for i in s["items"]
                    ],
                )
                for s in data["sections"]
            ],
        )

"""The hand-written keys of tests/fixtures/runbooks/keys/, and how a draft is held against one."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNBOOKS = Path(__file__).resolve().parent.parent / "fixtures" / "runbooks"
KEYS = RUNBOOKS / "keys"


def load_keys() -> list[tuple[str, dict[str, Any]]]:
    """(runbook file, its key) for every key; a key may serve several copies of one runbook."""
    found = []
    for path in sorted(KEYS.glob("*.json")):
        key = json.loads(path.read_text(encoding="utf-8"))
        names = key["runbook"] if isinstance(key["runbook"], list) else [key["runbook"]]
        found.extend((name, key) for name in names)
    return found


@dataclass
class Score:
    """What a draft found of a key's items, and what it found that the key does not have."""

    expected: int
    found: int
    missed: list[Any]
    invented: list[Any]

    @property
    def share(self) -> float:
        return self.found / self.expected if self.expected else 1.0


def score(expected: list[Any], got: list[Any]) -> Score:
    want, have = Counter(map(_hashable, expected)), Counter(map(_hashable, got))
    common = want & have
    return Score(
        expected=sum(want.values()),
        found=sum(common.values()),
        missed=sorted((want - common).elements(), key=repr),
        invented=sorted((have - common).elements(), key=repr),
    )


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def criteria_of(draft_json: dict[str, Any]) -> list[list[Any]]:
    return [
        [c["metric"], c["operator"], c["threshold"], c["action"]] for c in draft_json["criteria"]
    ]


def items_of(draft_json: dict[str, Any]) -> list[list[str]]:
    return [
        [checklist["name"].split(": ", 1)[-1], checklist["kind"], item["text"]]
        for checklist in draft_json["checklists"]
        for section in checklist["sections"]
        for item in section["items"]
    ]


def key_items(key: dict[str, Any]) -> list[list[str]]:
    return [[c["heading"], c["kind"], text] for c in key["checklists"] for text in c["items"]]

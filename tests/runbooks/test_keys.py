"""Every runbook of tests/fixtures/runbooks/ against its hand-written key (keys/*.json), through
`manage.py import_runbook FILE --dry-run --json`: every stage and escalation level found, at least
90 % of the key's criteria and checklist items, and nothing the key does not have."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from .keys import RUNBOOKS, criteria_of, items_of, key_items, load_keys, score

KEYED = load_keys()
IDS = [name for name, _ in KEYED]


def dry_run(name: str) -> dict[str, Any]:
    out = StringIO()
    call_command("import_runbook", str(RUNBOOKS / name), "--dry-run", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_the_shared_runbooks_and_four_styles_of_our_own_are_keyed() -> None:
    shared = {"ai-orchestra-rollout-guide.md", "dci-orchestrator-deployment-guide.md"}
    assert shared <= set(IDS)
    assert len(set(IDS) - shared) >= 4  # tables, numbered phases, YAML snippets, mojibake
    assert {path.name for path in RUNBOOKS.glob("*.md")} <= set(IDS), "a runbook without a key"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "key"), KEYED, ids=IDS)
def test_dry_run_matches_the_key(name: str, key: dict[str, Any]) -> None:
    draft = dry_run(name)
    assert set(draft) == {"title", "notes", "checklists", "plan", "criteria", "escalation"}

    stages = [
        [s["environment"], s["traffic_percentage"], s["min_soak_seconds"]]
        for s in draft["plan"]["stages"]
    ]
    assert stages == key["stages"], "every stage, in order, and no other"
    assert all(s["line"] > 0 and s["name"] for s in draft["plan"]["stages"])

    levels = [
        [lv["position"], lv["after_minutes"], lv["critical_only"], lv["targets"]]
        for lv in draft["escalation"]["levels"]
    ]
    assert levels == key["escalation"], "every escalation level, and no other"

    criteria = score(key["criteria"], criteria_of(draft))
    assert criteria.share >= 0.9, f"criteria missed: {criteria.missed}"
    assert not criteria.invented, f"criteria not in the key: {criteria.invented}"
    assert all(c["line"] > 0 for c in draft["criteria"])

    items = score(key_items(key), items_of(draft))
    assert items.share >= 0.9, f"checklist items missed: {items.missed}"
    assert not items.invented, f"checklist items not in the key: {items.invented}"
    assert all(
        item["line"] > 0
        for checklist in draft["checklists"]
        for section in checklist["sections"]
        for item in section["items"]
    )
    for fragment in key["notes"]:
        assert any(fragment in note for note in draft["notes"]), (fragment, draft["notes"])


def test_the_dci_key_holds_a_criterion_the_parser_misses_within_the_floor() -> None:
    # The floor is real: the key is what a reader finds, not what the parser happens to find.
    key = dict(KEYED)["dci-orchestrator-deployment-guide.md"]
    assert ["health_check_failures", ">=", 3.0, "pause"] in key["criteria"]


@pytest.mark.django_db
def test_the_mojibake_copy_is_repaired_into_the_clean_runbook() -> None:
    damaged, clean = dry_run("vi-mojibake-runbook.md"), dry_run("vi-clean-runbook.md")
    assert (RUNBOOKS / "vi-mojibake-runbook.md").read_text().startswith("# H∆∞·ªõng")
    assert damaged["title"] == clean["title"] == "Hướng dẫn triển khai Thanh toán — Runbook"
    assert damaged["checklists"] == clean["checklists"]  # ✅ and — came back too
    assert "✅" in damaged["checklists"][0]["sections"][0]["items"][0]["text"]
    assert damaged["plan"] == clean["plan"]
    assert [n for n in damaged["notes"] if "Mac Roman" in n and "repaired" in n]
    assert clean["notes"] == []

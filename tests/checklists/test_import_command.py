"""`manage.py import_runbook`: dry-run JSON, saving templates, new versions, bad files."""

from __future__ import annotations

import json
from dataclasses import replace
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from apps.checklists.choices import ChecklistKind
from apps.checklists.models import (
    Checklist,
    ChecklistItem,
    ChecklistTemplate,
    PlanChecklist,
    TemplateItem,
    TemplateSection,
)
from apps.checklists.runbook import MAX_BYTES, parse
from apps.checklists.services import import_runbook
from apps.core.actors import Actor
from tests.factories import PlanFactory, make_release

from .helpers import link
from .test_runbook import AI_ORCHESTRA, DCI

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
CHECKLIST_MODELS = [
    ChecklistTemplate,
    TemplateSection,
    TemplateItem,
    PlanChecklist,
    Checklist,
    ChecklistItem,
]


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_runbook", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in CHECKLIST_MODELS}


def test_dry_run_json_of_both_runbooks_saves_nothing() -> None:
    out, _ = run(str(AI_ORCHESTRA), "--dry-run", "--json")
    ai = json.loads(out)["checklists"]
    assert [(t["name"], t["kind"]) for t in ai] == [
        ("AI Orchestra Deployment and Rollout Guide: Pre-Deployment Checklist", "pre_deployment")
    ]
    assert [(s["name"], len(s["items"])) for s in ai[0]["sections"]] == [
        ("Code Quality", 5),
        ("Infrastructure", 5),
        ("Documentation", 4),
    ]
    assert ai[0]["sections"][0]["items"][0] == {
        "text": "All tests passing (unit, integration, E2E)",
        "key": "tests",
        "line": 16,
    }

    out, _ = run(str(DCI), "--dry-run", "--json", "--name", "DCI")
    dci = json.loads(out)["checklists"]
    assert [
        (t["name"], t["kind"], [(s["name"], len(s["items"])) for s in t["sections"]]) for t in dci
    ] == [
        (
            "DCI: Pre-Deployment Checklist",
            "pre_deployment",
            [
                ("Code Validation", 5),
                ("Configuration Validation", 5),
                ("Infrastructure Readiness", 5),
                ("Team Readiness", 4),
            ],
        ),
        (
            "DCI: 24-Hour Post-Deployment Checklist",
            "post_deployment",
            [("24-Hour Post-Deployment Checklist", 5)],
        ),
        ("DCI: Weekly Review Checklist", "periodic_review", [("Weekly Review Checklist", 5)]),
        # Plain bullets under "Success Criteria …", grouped under their bold labels.
        (
            "DCI: Success Criteria for Full Rollout",
            "stage_exit",
            [("Technical Success", 4), ("Business Success", 4), ("Operational Success", 4)],
        ),
    ]
    assert set(dci[0]) == {"name", "kind", "sections"}
    assert set(dci[0]["sections"][0]) == {"name", "items"}
    assert set(dci[0]["sections"][0]["items"][0]) == {"text", "key", "line"}
    assert ChecklistTemplate.objects.count() == 0


def test_dry_run_without_json_lists_the_items() -> None:
    out, _ = run(str(AI_ORCHESTRA), "--dry-run")
    assert out.startswith("Dry run: nothing saved.")
    assert "[ ] Code coverage > 80%  (key: coverage)" in out
    assert ChecklistTemplate.objects.count() == 0


def test_import_saves_templates_with_ordered_sections_and_items() -> None:
    out, _ = run(str(DCI))
    assert out.count("Imported ") == 4
    templates = list(ChecklistTemplate.objects.order_by("id"))
    assert [(t.name, t.version, t.kind, t.is_current) for t in templates] == [
        ("DCI Orchestrator Deployment Guide: Pre-Deployment Checklist", 1, "pre_deployment", True),
        (
            "DCI Orchestrator Deployment Guide: 24-Hour Post-Deployment Checklist",
            1,
            "post_deployment",
            True,
        ),
        ("DCI Orchestrator Deployment Guide: Weekly Review Checklist", 1, "periodic_review", True),
        (
            "DCI Orchestrator Deployment Guide: Success Criteria for Full Rollout",
            1,
            "stage_exit",
            True,
        ),
    ]
    pre = templates[0]
    assert [(s.name, s.items.count()) for s in pre.sections.order_by("position")] == [
        ("Code Validation", 5),
        ("Configuration Validation", 5),
        ("Infrastructure Readiness", 5),
        ("Team Readiness", 4),
    ]
    assert pre.source == "dci-orchestrator-deployment-guide.md"
    assert pre.created_by == "system:import_runbook"
    assert list(pre.items.exclude(key="").values_list("key", flat=True)) == [
        "tests",
        "integration-tests",
        "build",
        "lint",
        "security-scan",
    ]

    run(str(AI_ORCHESTRA), "--name", "AI Orchestra pre-deployment")
    ai = ChecklistTemplate.objects.get(name="AI Orchestra pre-deployment")
    assert (ai.kind, ai.items.count(), ai.sections.count()) == (ChecklistKind.PRE_DEPLOYMENT, 14, 3)


def test_json_without_dry_run_saves_and_prints() -> None:
    out, _ = run(str(AI_ORCHESTRA), "--json")
    assert json.loads(out)["checklists"][0]["name"] == ChecklistTemplate.objects.get().name


def test_reimporting_a_name_adds_a_version_and_leaves_running_releases_alone(
    service, production, tmp_path: Path
) -> None:
    run(str(AI_ORCHESTRA), "--name", "Pre-flight")
    v1 = ChecklistTemplate.objects.get(name="Pre-flight")
    plan = PlanFactory(slug="with-preflight")
    link(plan, v1)
    running = make_release(service=service, environment=production, plan=plan)
    assert running.checklists.get().items.count() == 14

    edited = tmp_path / "edited.md"
    edited.write_text("# Guide\n## Pre-flight checklist\n- [ ] Only this now\n", encoding="utf-8")
    out, _ = run(str(edited), "--name", "Pre-flight")
    assert "Pre-flight (v2) [Pre-deployment], 1 items, replacing v1" in out
    assert "1 plan link(s) moved to it" in out

    v1.refresh_from_db()
    v2 = ChecklistTemplate.objects.get(name="Pre-flight", is_current=True)
    assert (v1.is_current, v2.version) == (False, 2)
    assert PlanChecklist.objects.get(plan=plan).template == v2
    # The running release keeps the 14 items it was registered with...
    checklist = running.checklists.get()
    assert (checklist.template_version, checklist.items.count()) == (1, 14)
    # ...and the next release gets the new version.
    later = make_release(service=service, environment=production, plan=plan)
    assert [i.text for i in later.checklists.get().items.all()] == ["Only this now"]


def test_a_file_that_is_not_utf8_is_imported_with_a_note(tmp_path: Path) -> None:
    latin = tmp_path / "latin.md"
    latin.write_bytes("# Guía\n## Checklist\n- [ ] Revisión del código\n".encode("cp1252"))
    out, err = run(str(latin))
    assert "Note: latin.md is not valid UTF-8" in err
    assert TemplateItem.objects.get().text == "Revisión del código"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty.md is empty: there is nothing to import."),
        (
            b"# Guide\n\nJust prose.\n- a bullet\n",
            "empty.md has no checklist items, stages, criteria or escalation levels that "
            "rolloutdesk recognises (see docs/runbooks.md); nothing to import.",
        ),
        (b"\x00\x00\xffbinary" * 100, "empty.md looks like a binary file, not a Markdown runbook."),
        (
            b"- [ ] x\n" * (MAX_BYTES // 8 + 1),
            "empty.md is 2.0 MB (2,097,160 bytes); runbooks up to 2 MB (2,097,152 bytes) can be "
            "imported.",
        ),
    ],
    ids=["empty", "no-tasks", "binary", "too-large"],
)
def test_bad_files_give_a_clear_message_and_leave_the_database_as_it_was(
    tmp_path: Path, content: bytes, message: str
) -> None:
    run(str(AI_ORCHESTRA))  # something already there, which must stay exactly as it is
    before = counts()
    bad = tmp_path / "empty.md"
    bad.write_bytes(content)
    with pytest.raises(CommandError) as caught:
        run(str(bad))
    assert str(caught.value) == message
    assert counts() == before


def test_missing_file_and_directory_are_named(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No such file: .*nope.md"):
        run(str(tmp_path / "nope.md"))
    with pytest.raises(CommandError, match="is a directory, not a runbook file"):
        run(str(tmp_path))
    assert counts() == dict.fromkeys(counts(), 0)


def test_an_import_saves_all_its_checklists_or_none() -> None:
    parsed = parse(DCI.read_bytes(), source=DCI.name)
    broken = replace(parsed.checklists[2], sections=[replace(parsed.checklists[2].sections[0])])
    broken.sections[0].items = [replace(broken.sections[0].items[0], key="Not A Key!")]
    with pytest.raises(ValidationError) as caught:
        import_runbook(parsed, actor=SYSTEM, chosen=[*parsed.checklists[:2], broken])
    assert "key 'Not A Key!' for 'A/B test statistical significance achieved'" in str(caught.value)
    assert counts() == dict.fromkeys(counts(), 0)

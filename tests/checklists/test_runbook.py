"""The runbook parser (pure, no database): the two real runbooks, Markdown variants, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.checklists import runbook
from apps.checklists.choices import ChecklistKind
from apps.checklists.runbook import RunbookError, clean_heading, guess_key, parse

# Copies of ../shared/runbooks, so the tests run from any clone.
RUNBOOKS = Path(__file__).resolve().parents[1] / "fixtures" / "runbooks"
AI_ORCHESTRA = RUNBOOKS / "ai-orchestra-rollout-guide.md"
DCI = RUNBOOKS / "dci-orchestrator-deployment-guide.md"


def shape(parsed: runbook.ParsedRunbook) -> list[tuple[str, str, list[tuple[str, int]]]]:
    return [
        (c.name, c.kind, [(s.name, len(s.items)) for s in c.sections]) for c in parsed.checklists
    ]


def md(text: str, **kwargs: str) -> runbook.ParsedRunbook:
    return parse(text.encode(), source="runbook.md", **kwargs)


# --- the two real runbooks, counted by hand ------------------------------------------------------


def test_ai_orchestra_runbook_gives_one_pre_deployment_checklist_of_14_items() -> None:
    # Counted in the file: "## Pre-Deployment Checklist" (line 13) with three "###" sections,
    # lines 16-20 (5), 23-27 (5) and 30-33 (4). The "Rollout Phases" bullets are plain lists,
    # not task items, and the code blocks hold none.
    parsed = parse(AI_ORCHESTRA.read_bytes(), source=AI_ORCHESTRA.name)
    assert parsed.title == "AI Orchestra Deployment and Rollout Guide"
    assert parsed.notes == []
    assert shape(parsed) == [
        (
            "AI Orchestra Deployment and Rollout Guide: Pre-Deployment Checklist",
            ChecklistKind.PRE_DEPLOYMENT,
            [("Code Quality", 5), ("Infrastructure", 5), ("Documentation", 4)],
        )
    ]
    code_quality = parsed.checklists[0].sections[0].items
    assert [(i.text, i.key) for i in code_quality] == [
        ("All tests passing (unit, integration, E2E)", "tests"),
        ("Code coverage > 80%", "coverage"),
        ("No critical security vulnerabilities", "security-scan"),
        ("Performance benchmarks met", ""),
        ("Code review completed", ""),
    ]
    assert parsed.checklists[0].sections[2].items[-1].text == "Team notified of deployment"
    assert all(i.required for s in parsed.checklists[0].sections for i in s.items)


def test_dci_runbook_gives_pre_post_and_weekly_checklists() -> None:
    # Counted in the file: "## Pre-Deployment Checklist" with four "### ✅ ..." sections at lines
    # 21-25 (5), 28-32 (5), 35-39 (5), 42-45 (4); under "## Post-Deployment Validation" the
    # "### 24-Hour Post-Deployment Checklist" (437-441, 5) and "### Weekly Review Checklist"
    # (445-449, 5). The numbered "Success Criteria" lists are not task items.
    parsed = parse(DCI.read_bytes(), source=DCI.name)
    title = "DCI Orchestrator Deployment Guide"
    assert shape(parsed) == [
        (
            f"{title}: Pre-Deployment Checklist",
            ChecklistKind.PRE_DEPLOYMENT,
            [
                ("Code Validation", 5),
                ("Configuration Validation", 5),
                ("Infrastructure Readiness", 5),
                ("Team Readiness", 4),
            ],
        ),
        (
            f"{title}: 24-Hour Post-Deployment Checklist",
            ChecklistKind.POST_DEPLOYMENT,
            [("24-Hour Post-Deployment Checklist", 5)],
        ),
        (
            f"{title}: Weekly Review Checklist",
            ChecklistKind.PERIODIC_REVIEW,
            [("Weekly Review Checklist", 5)],
        ),
    ]
    code_validation = parsed.checklists[0].sections[0].items
    assert [(i.text, i.key) for i in code_validation] == [
        ("All DCI tests pass (`npm run test`)", "tests"),
        ("Integration tests complete successfully", "integration-tests"),
        ("TypeScript compilation successful (`npm run build`)", "build"),
        ("ESLint validation passes (`npm run lint`)", "lint"),
        ("Security scan completed (`npm run validate:security`)", "security-scan"),
    ]
    keyed = [i.text for c in parsed.checklists for s in c.sections for i in s.items if i.key]
    assert len(keyed) == 5  # only the Code Validation items name an automated check
    assert parsed.checklists[2].sections[0].items[0].text == (
        "A/B test statistical significance achieved"
    )


def test_name_option_names_one_checklist_or_prefixes_several() -> None:
    single = parse(AI_ORCHESTRA.read_bytes(), source=AI_ORCHESTRA.name, name="AI pre-flight")
    assert [c.name for c in single.checklists] == ["AI pre-flight"]
    several = parse(DCI.read_bytes(), source=DCI.name, name="DCI")
    assert [c.name for c in several.checklists] == [
        "DCI: Pre-Deployment Checklist",
        "DCI: 24-Hour Post-Deployment Checklist",
        "DCI: Weekly Review Checklist",
    ]


# --- Markdown variants ---------------------------------------------------------------------------


def test_every_task_list_syntax_becomes_an_item_of_its_nearest_heading() -> None:
    parsed = md(
        "# Guide\n"
        "## Release checklist\n"
        "### Build\n"
        "- [ ] dash\n"
        "* [ ] star\n"
        "+ [x] plus, ticked in the file\n"
        "1. [ ] numbered\n"
        "2) [X] numbered with a paren\n"
        "  - [ ] indented by two\n"
        "\t- [ ] indented by a tab\n"
        "> - [ ] in a quote\n"
        "- [ ] a long item that wraps\n"
        "  onto the next line\n"
        "- plain bullet, not a task\n"
        "- [] not a task either\n"
        "### Ship\n"
        "- [ ]   spaced   \n"
    )
    (checklist,) = parsed.checklists
    build, ship = checklist.sections
    assert (build.name, ship.name) == ("Build", "Ship")
    assert [i.text for i in build.items] == [
        "dash",
        "star",
        "plus, ticked in the file",
        "numbered",
        "numbered with a paren",
        "indented by two",
        "indented by a tab",
        "in a quote",
        "a long item that wraps onto the next line",
    ]
    assert [i.text for i in ship.items] == ["spaced"]


def test_code_blocks_comments_and_front_matter_hold_no_items() -> None:
    parsed = md(
        "---\ntitle: front matter\n---\n"
        "# Guide\n"
        "## Checks\n"
        "```markdown\n- [ ] inside a fence\n## Not a heading\n```\n"
        "~~~~\n- [ ] inside a tilde fence\n~~~~\n"
        "<!--\n- [ ] inside a comment\n-->\n"
        "- [ ] real one\n"
    )
    assert shape(parsed) == [("Guide: Checks", ChecklistKind.PRE_DEPLOYMENT, [("Checks", 1)])]


def test_heading_decoration_is_stripped_into_a_clean_section_name() -> None:
    assert clean_heading("✅ Code Validation") == "Code Validation"
    assert clean_heading("1. **Infrastructure** 🚀") == "Infrastructure"
    assert clean_heading("2.3 __Team readiness__:") == "Team readiness"
    assert clean_heading("⚠️ [Rollback](#rollback) steps") == "Rollback steps"
    assert clean_heading("`deploy` — *before* launch") == "deploy — before launch"
    # Meaningful characters stay: not numbering, not emoji.
    assert clean_heading("24-Hour Post-Deployment Checklist") == "24-Hour Post-Deployment Checklist"
    assert clean_heading("2024 Q4 rollout") == "2024 Q4 rollout"
    assert clean_heading("Preflight © ACME, 5°") == "Preflight © ACME, 5°"
    assert clean_heading("🚀") == "🚀"  # nothing else to call it


def test_setext_headings_and_bold_lines_make_sections() -> None:
    parsed = md(
        "Release runbook\n===============\n\n"
        "Preparation\n-----------\n"
        "**Before you start:**\n"
        "- [ ] Tell support\n"
        "**On the day**\n"
        "- [ ] Freeze merges\n"
    )
    assert shape(parsed) == [
        (
            "Release runbook: Preparation",
            ChecklistKind.PRE_DEPLOYMENT,
            [("Before you start", 1), ("On the day", 1)],
        )
    ]


def test_without_a_checklist_heading_each_top_part_is_a_checklist_with_a_guessed_kind() -> None:
    parsed = md(
        "# Payments release\n"
        "## Before the deploy\n### People\n- [ ] Support told\n### Tech\n- [ ] Backups checked\n"
        "## Canary stage exit\n- [ ] Dashboards reviewed\n"
        "## After the release\n- [ ] Error rate normal (optional)\n"
        "## Monthly retro\n- [ ] Lessons written down\n"
    )
    assert shape(parsed) == [
        (
            "Payments release: Before the deploy",
            ChecklistKind.PRE_DEPLOYMENT,
            [("People", 1), ("Tech", 1)],
        ),
        (
            "Payments release: Canary stage exit",
            ChecklistKind.STAGE_EXIT,
            [("Canary stage exit", 1)],
        ),
        (
            "Payments release: After the release",
            ChecklistKind.POST_DEPLOYMENT,
            [("After the release", 1)],
        ),
        ("Payments release: Monthly retro", ChecklistKind.PERIODIC_REVIEW, [("Monthly retro", 1)]),
    ]
    assert parsed.checklists[2].sections[0].items[0].required is False


def test_items_before_any_heading_are_named_after_the_file() -> None:
    parsed = parse(b"- [ ] one\n- [ ] two\n", source="deploy_steps-v2.md")
    assert shape(parsed) == [
        ("deploy steps v2", ChecklistKind.PRE_DEPLOYMENT, [("deploy steps v2", 2)])
    ]


def test_same_headings_twice_get_distinct_names() -> None:
    parsed = md("# G\n## Checklist\n- [ ] a\n## Checklist\n- [ ] b\n")
    assert [c.name for c in parsed.checklists] == ["G: Checklist", "G: Checklist (2)"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("All tests passing", "tests"),
        ("Unit tests green", "tests"),
        ("Rollback procedures tested", ""),
        ("A/B test metrics collection working", ""),
        ("E2E tests pass on staging", "e2e-tests"),
        ("Coverage above 80%", "coverage"),
        ("Linting clean", "lint"),
        ("Docker build succeeds", "build"),
        ("Trivy image scan shows no critical CVEs", "security-scan"),
        ("SAST security scan done", "security-scan"),
        ("Code review completed", ""),
        ("Database migrations prepared", ""),
    ],
)
def test_items_naming_an_automated_check_are_offered_a_key(text: str, key: str) -> None:
    assert guess_key(text) == key


# --- any language, any encoding -------------------------------------------------------------------


def test_text_in_any_language_and_odd_characters_survive_as_written() -> None:
    items = [
        "Тесты пройдены — «все» ✅",
        "テストがすべて成功した",
        "التحقق من النسخ الاحتياطي",
        "Zero‍width joiner & <b>not html</b> `code` **bold** 🧪",
    ]
    text = "# Выпуск\n## 🚀 Чек-лист перед релизом\n" + "".join(f"- [ ] {i}\n" for i in items)
    parsed = md(text)
    (checklist,) = parsed.checklists
    assert checklist.heading == "Чек-лист перед релизом"
    assert [i.text for i in checklist.sections[0].items] == items


def test_a_file_that_is_not_utf8_is_decoded_with_a_note() -> None:
    data = "# Déploiement\n## Checklist\n- [ ] Vérifier café\n".encode("cp1252")
    parsed = parse(data, source="fr.md")
    assert parsed.checklists[0].sections[0].items[0].text == "Vérifier café"
    (note,) = parsed.notes
    assert "fr.md is not valid UTF-8" in note and "byte 0xE9 on line 1" in note
    assert "Windows-1252" in note


def test_utf16_and_a_utf8_bom_are_read() -> None:
    text = "# G\n## Checklist\n- [ ] ünïcode\n"
    for data in (text.encode("utf-16"), b"\xef\xbb\xbf" + text.encode()):
        parsed = parse(data, source="x.md")
        assert parsed.checklists[0].sections[0].items[0].text == "ünïcode"
    assert parse(text.encode("utf-8-sig")).notes == []


# --- files that cannot be imported ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "x.md is empty: there is nothing to import."),
        (b"  \n\t\n", "x.md is empty: there is nothing to import."),
        (
            b"# Guide\n- plain bullet\n```\n- [ ] in code\n```\n",
            "x.md has no task-list items (lines like '- [ ] Tests pass'); nothing to import.",
        ),
        (
            b"\x00\x01\x02binary\x00data" * 10,
            "x.md looks like a binary file, not a Markdown runbook.",
        ),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "x.md is a PNG image, not a Markdown runbook."),
        (b"%PDF-1.7\n- [ ] x", "x.md is a PDF document, not a Markdown runbook."),
        (
            b"- [ ] x\n" * (runbook.MAX_BYTES // 8 + 1),
            "x.md is 2.0 MB (2,097,160 bytes); runbooks up to 2 MB (2,097,152 bytes) can be "
            "imported.",
        ),
    ],
    ids=["empty", "blank", "no-tasks", "binary", "png", "pdf", "too-large"],
)
def test_bad_files_get_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(RunbookError) as caught:
        parse(data, source="x.md")
    assert caught.value.message == message


def test_exactly_2_mb_is_accepted() -> None:
    # Long items, to stay within the line and item limits (tests/hardening/test_runbook_bounds).
    line = b"- [ ] " + b"x" * 1_100 + b"\n"
    data = b"# G\n" + line * ((runbook.MAX_BYTES - 4) // len(line))
    data += b" " * (runbook.MAX_BYTES - len(data))
    assert len(data) == runbook.MAX_BYTES
    assert parse(data).checklists[0].item_count == (runbook.MAX_BYTES - 4) // len(line)

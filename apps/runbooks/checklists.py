"""Checklists from the runbook's blocks: task boxes anywhere (outside code), and plain or emoji
bullets under a heading or bold label that names a checklist, an agenda, a pre-flight, a
validation, success criteria or checks.

Task items group under the nearest heading that calls itself a checklist, else under the
runbook's top-level part; the nearest heading (or the bold label above a nested list) is the
section. Each checklist's kind is guessed from its heading and the headings around it, and items
naming an automated check (tests pass, lint, build, coverage, security scan) are offered a key.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from apps.checklists.choices import ChecklistKind
from apps.checklists.drafts import DetectedChecklist, DetectedItem, DetectedSection

from .markdown import Block, Heading, strip_decoration
from .text import RunbookError

MAX_ITEMS = 2_000
MAX_ITEM_CHARS = 2_000  # one item's text, its wrapped lines included
NAME_MAX_LENGTH = 200

_CHECKLIST_WORD = re.compile(r"check[\s-]?list", re.IGNORECASE)
# What makes plain bullets a checklist: the heading or label above them names one of these.
_LISTS_ITEMS = re.compile(
    r"check[\s-]?lists?|agenda|pre[- ]?flight|validation|success criteria|exit criteria"
    r"|acceptance criteria|go\s*/\s*no[- ]?go|\bchecks\b",
    re.IGNORECASE,
)


def name_from_source(source: str) -> str:
    """A readable name from a file name: "dci-orchestrator_guide.md" -> "dci orchestrator guide"."""
    stem = PurePath(source).stem or source
    return " ".join(re.split(r"[-_\s]+", stem)).strip() or "Runbook"


# Checked in order: an explicit "pre-release" wins over "validation"; "24-hour" means after.
_KIND_PATTERNS = [
    (
        ChecklistKind.STAGE_EXIT,
        r"success criteria|exit criteria|promotion criteria|go\s*/\s*no[- ]?go",
    ),
    (ChecklistKind.PRE_DEPLOYMENT, r"\bpre[- ]?(deploy|release|launch|rollout|flight|production)"),
    (
        ChecklistKind.POST_DEPLOYMENT,
        r"post[- ]?(deploy|release|launch|rollout)|after (the )?(deploy|release|launch|rollout)"
        r"|\b\d+[- ]?(hours?|h|days?)\b|\bsmoke\b|\bvalidation\b|\bverification\b",
    ),
    (
        ChecklistKind.PERIODIC_REVIEW,
        r"\b(weekly|monthly|daily|quarterly|periodic|recurring|retro(spective)?)\b",
    ),
    (ChecklistKind.STAGE_EXIT, r"\b(stage|phase|canary|exit|promotion|promote|gate)\b"),
    (ChecklistKind.PRE_DEPLOYMENT, r"\bbefore\b|\breadiness\b|\bprepar|\bgo[- ]?live\b"),
]
_KIND_REGEXES = [(kind, re.compile(pattern)) for kind, pattern in _KIND_PATTERNS]


def guess_kind(*headings: str) -> str:
    """The kind a heading suggests, trying each heading in turn; pre-deployment by default."""
    for heading in headings:
        lowered = heading.lower()
        for kind, pattern in _KIND_REGEXES:
            if pattern.search(lowered):
                return kind
    return ChecklistKind.PRE_DEPLOYMENT


_SUCCESS = re.compile(r"(pass|green|succe|complet|\bok\b|\bclean\b)")
# (key, pattern, needs a success word): first match wins, specific before general. Compiled
# once: looked up in re's cache for every item, they were half of a parse's time.
_KEY_REGEXES = [
    (key, re.compile(pattern), needs)
    for key, pattern, needs in [
        ("integration-tests", r"\bintegration tests?\b", True),
        ("e2e-tests", r"\b(e2e|end[- ]to[- ]end) tests?\b", True),
        ("tests", r"\btests?\b|\btest suite\b", True),
        ("coverage", r"\bcoverage\b", False),
        ("lint", r"\b(lint|linting|linter|eslint|flake8|ruff|pylint|stylelint)\b", False),
        ("build", r"\bbuilds?\b|\bcompil(e|es|ed|ation)\b", False),
        (
            "security-scan",
            r"\bsecurity[- ]?scan|\bvulnerabilit|\bsast\b|\bdast\b|\btrivy\b|\bsnyk\b"
            r"|validate:security|\bcves?\b",
            False,
        ),
    ]
]


def guess_key(text: str) -> str:
    """The automated-check key an item's text names (tests, lint, ...), or "" for manual."""
    lowered = text.lower()
    for key, pattern, needs_success in _KEY_REGEXES:
        if pattern.search(lowered) and (not needs_success or _SUCCESS.search(lowered)):
            return key
    return ""


def is_optional(text: str) -> bool:
    return bool(re.search(r"^\W*optional\b|\(optional\)", text, re.IGNORECASE))


def is_checklist_bullet(block: Block) -> bool:
    """A plain bullet that belongs to a checklist (its heading or label names one)."""
    if block.kind != "item" or block.task is not None or not block.text:
        return False
    if block.label and any(child.kind == "item" for child in block.children):
        return False  # a label over a nested list: the section's name, not an item
    return _owner_of_bullet(block) is not None


def _owner_of_bullet(block: Block) -> Heading | None:
    item = block.parent
    while item is not None:
        # Only a label names a list ("**Pre-flight checks**:"); an item's own words do not.
        if item.label and _LISTS_ITEMS.search(item.label):
            return Heading(99, item.label, item.line, pseudo=True)
        item = item.parent
    nearest = block.heading
    if nearest is not None and _LISTS_ITEMS.search(nearest.name):
        return nearest
    return None


def _too_long(source: str, line: int) -> RunbookError:
    return RunbookError(
        f"{source}: the task-list item on line {line} is longer than {MAX_ITEM_CHARS:,} "
        "characters (with its wrapped lines); shorten it."
    )


def extract(
    blocks: list[Block], *, title: str, title_line: int | None, source: str, name: str = ""
) -> list[DetectedChecklist]:
    """The runbook's checklists, in the order their first items appear."""
    root = Heading(0, title, 0)
    checklists: dict[int, DetectedChecklist] = {}
    sections: dict[tuple[int, object], DetectedSection] = {}
    count = 0
    for block in blocks:
        if block.kind != "item":
            continue
        if block.task is not None:
            if not block.text:
                continue
            path = list(block.path) or [root]
            owner = next((h for h in reversed(path) if _CHECKLIST_WORD.search(h.name)), None)
            if owner is None:
                # No heading calls itself a checklist: the runbook's top-level part is one.
                below_title = [h for h in path if h.line != title_line]
                owner = below_title[0] if below_title else path[0]
            outer = [h.name for h in reversed(path[: path.index(owner)]) if h.line != title_line]
            section_key: object = path[-1].line
            section_name = path[-1].name
            text = block.text
        elif is_checklist_bullet(block):
            owner = _owner_of_bullet(block)
            assert owner is not None
            outer = [h.name for h in reversed(block.path) if h.line != title_line]
            parent = block.parent
            if parent is not None and parent.label:
                section_key, section_name = ("item", parent.line), parent.label
            elif owner.line == (block.heading.line if block.heading else -1) or parent is None:
                section_key = block.heading.line if block.heading else 0
                section_name = block.heading.name if block.heading else title
            else:
                section_key, section_name = ("item", owner.line), owner.name
            text = strip_decoration(block.text)
        else:
            continue
        count += 1
        if count > MAX_ITEMS:
            raise RunbookError(
                f"{source} has more than {MAX_ITEMS:,} checklist items (line {block.line} is "
                f"item {MAX_ITEMS + 1:,}); split it into several runbooks."
            )
        if len(text) > MAX_ITEM_CHARS:
            raise _too_long(source, block.line)
        checklist = checklists.get(owner.line)
        if checklist is None:
            checklist = checklists[owner.line] = DetectedChecklist(
                name=owner.name,
                heading=owner.name,
                kind=guess_kind(owner.name, *outer),
                line=owner.line,
            )
        section = sections.get((owner.line, section_key))
        if section is None:
            section = sections[(owner.line, section_key)] = DetectedSection(section_name)
            checklist.sections.append(section)
        section.items.append(
            DetectedItem(
                text=text, key=guess_key(text), required=not is_optional(text), line=block.line
            )
        )
    found = list(checklists.values())
    _name_checklists(found, title, name.strip())
    return found


def _truncate(name: str) -> str:
    return name if len(name) <= NAME_MAX_LENGTH else name[: NAME_MAX_LENGTH - 1].rstrip() + "…"


def _name_checklists(checklists: list[DetectedChecklist], title: str, name: str) -> None:
    """One checklist takes the given name; several take "<name or title>: <their heading>"."""
    prefix = name or title
    seen: dict[str, int] = {}
    for checklist in checklists:
        if len(checklists) == 1 and name:
            proposed = name
        elif checklist.heading == prefix:
            proposed = prefix
        else:
            proposed = f"{prefix}: {checklist.heading}"
        proposed = _truncate(proposed)
        seen[proposed] = seen.get(proposed, 0) + 1
        if seen[proposed] > 1:
            proposed = _truncate(f"{proposed} ({seen[proposed]})")
        checklist.name = proposed

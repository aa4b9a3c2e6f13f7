"""Parse a runbook into a Draft: pure, nothing is saved here.

The text is decoded and repaired (apps.runbooks.text), read as Markdown (markdown.py), and each
extractor reads the same blocks: checklists, the plan, criteria, escalation.
"""

from __future__ import annotations

from . import checklists, criteria, escalation, plan
from .draft import Draft, EscalationDraft, PlanDraft
from .markdown import read
from .text import RunbookError, decode

# Far beyond a real runbook (the shared ones have 500 lines), and what keeps one upload's parse,
# preview and save well inside a web worker's timeout.
MAX_LINES = 50_000


def _without_front_matter(text: str) -> str:
    """Blank out a leading YAML front-matter block, keeping line numbers."""
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return text
    for end, line in enumerate(lines[1:], start=1):
        if line.strip() in ("---", "..."):
            return "\n" * end + "\n".join(lines[end + 1 :])
    return text


def parse(data: bytes, *, source: str = "the file", name: str | None = None) -> Draft:
    """Parse runbook bytes; raises RunbookError with a clear message when nothing can be made."""
    text, notes = decode(data, source)
    lines = text.count("\n") + 1
    if lines > MAX_LINES:
        raise RunbookError(
            f"{source} has {lines:,} lines; runbooks up to {MAX_LINES:,} lines can be imported. "
            "Split it into several runbooks."
        )
    blocks = read(_without_front_matter(text))
    h1s = [b.path[-1] for b in blocks if b.kind == "heading" and b.path[-1].level == 1]
    title = h1s[0].name if h1s else checklists.name_from_source(source)
    title_line = h1s[0].line if len(h1s) == 1 else None
    found = checklists.extract(
        blocks, title=title, title_line=title_line, source=source, name=name or ""
    )
    stages = plan.extract(blocks, title_line=title_line, notes=notes)
    thresholds = criteria.extract(blocks, notes)
    levels, contacts = escalation.extract(blocks, notes)
    draft = Draft(
        source=source,
        title=title,
        # Several stages may quote the same line ("24-48 hours at each level"): one note each.
        notes=list(dict.fromkeys(notes)),
        checklists=found,
        plan=PlanDraft(name=(name or title)[:120] if stages else "", stages=stages),
        criteria=thresholds,
        escalation=EscalationDraft(levels, contacts),
    )
    if draft.is_empty:
        raise RunbookError(
            f"{source} has no checklist items, stages, criteria or escalation levels that "
            "rolloutdesk recognises (see docs/runbooks.md); nothing to import."
        )
    return draft

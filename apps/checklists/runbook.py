"""Turn a Markdown runbook into checklist templates: pure parsing, nothing is saved here.

Every task-list item (`- [ ]`, `* [x]`, `1. [ ]`, indented or quoted ones too) becomes an item of
its nearest heading, which becomes the section. The sections are grouped into checklists: under
the nearest heading that calls itself a checklist ("Pre-Deployment Checklist", "Weekly Review
Checklist"), else under the runbook's top-level heading. Each checklist's kind is guessed from its
heading, and items naming an automated check (tests pass, lint, build, coverage, security scan)
are offered a key. Callers (the management command, the admin upload) let people correct both.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

from .choices import ChecklistKind
from .drafts import DetectedChecklist, DetectedItem, DetectedSection

MAX_BYTES = 2 * 1024 * 1024
# Far beyond a real runbook (the two shared ones have 1,100 lines and 150 items), and what keeps
# one upload's parse, preview and save well inside a web worker's timeout.
MAX_LINES = 50_000
MAX_ITEMS = 2_000
MAX_ITEM_CHARS = 2_000  # one item's text, its wrapped lines included
NAME_MAX_LENGTH = 200
# How far into the file to look for the signs of a binary file.
SNIFF_BYTES = 8192


class RunbookError(Exception):
    """The file cannot be imported; the message says why, for the person who chose it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ParsedRunbook:
    """What a runbook holds: its title, the checklists found, and notes for the reader."""

    source: str
    title: str
    checklists: list[DetectedChecklist]
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> list[dict[str, Any]]:
        return [checklist.as_json() for checklist in self.checklists]

    def to_payload(self) -> dict[str, Any]:
        """Everything, as plain data (the admin carries it from the preview to the save)."""
        return asdict(self)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> ParsedRunbook:
        checklists = [
            DetectedChecklist(
                name=c["name"],
                heading=c["heading"],
                kind=c["kind"],
                sections=[
                    DetectedSection(s["name"], [DetectedItem(**i) for i in s["items"]])
                    for s in c["sections"]
                ],
            )
            for c in data["checklists"]
        ]
        return cls(data["source"], data["title"], checklists, list(data["notes"]))


# --- decoding ---------------------------------------------------------------------------------

_MAGIC = [
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a Word/Excel document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "a program"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
]
_BOMS = [
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
]


def too_large(source: str, size: int) -> str:
    """The message for a file over MAX_BYTES (also checked before reading an upload)."""
    return (
        f"{source} is {size / (1024 * 1024):.1f} MB ({size:,} bytes); runbooks up to 2 MB "
        f"({MAX_BYTES:,} bytes) can be imported."
    )


def decode(data: bytes, source: str = "the file") -> tuple[str, list[str]]:
    """Bytes to text, refusing what is not a text file; returns (text, notes for the reader)."""
    if len(data) > MAX_BYTES:
        raise RunbookError(too_large(source, len(data)))
    if not data.strip():
        raise RunbookError(f"{source} is empty: there is nothing to import.")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise RunbookError(
                    f"{source} starts like {encoding.upper()} text but cannot be read as it "
                    f"({exc.reason} at byte {exc.start})."
                ) from exc
            notes = [] if encoding == "utf-8-sig" else [f"{source} was read as {encoding.upper()}."]
            return _newlines(text), notes
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise RunbookError(f"{source} is {what}, not a Markdown runbook.")
    head = data[:SNIFF_BYTES]
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if b"\x00" in head or controls > len(head) // 10:
        raise RunbookError(f"{source} looks like a binary file, not a Markdown runbook.")
    try:
        return _newlines(data.decode("utf-8")), []
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex().upper()
        for encoding, label in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            note = (
                f"{source} is not valid UTF-8 (byte 0x{bad} on line {line}); it was read as "
                f"{label}. Check accented and special characters before saving."
            )
            return _newlines(text), [note]
        raise AssertionError("Latin-1 decodes every byte") from exc


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- names, kinds and keys --------------------------------------------------------------------

_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_NUMBERING = re.compile(r"^(?:\(?\d+(?:\.\d+)*[.):]|\d+(?:\.\d+)+)\s+")
_EMOJI_JOINERS = {0x200D, 0xFE0E, 0xFE0F, 0x20E3}


def _is_decoration(char: str) -> bool:
    """Emoji and pictographic symbols (✅ 🚀 ⚠️ ★), but not ©, ° or №, which carry meaning."""
    code = ord(char)
    if code in _EMOJI_JOINERS or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:
        return True
    return unicodedata.category(char) == "So" and code >= 0x2190


def clean_heading(raw: str) -> str:
    """A heading's words without its decoration: emoji, numbering, bold markers, links."""
    text = _LINK.sub(r"\1", raw)
    text = text.replace("`", "")
    previous = None
    while previous != text:
        previous = text
        text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(3), text)
    text = "".join(char for char in text if not _is_decoration(char))
    text = " ".join(text.split())
    text = _NUMBERING.sub("", text)
    text = text.strip(" \t-–—:|*_#").strip()
    return text or " ".join(raw.split())


def name_from_source(source: str) -> str:
    """A readable name from a file name: "dci-orchestrator_guide.md" -> "dci orchestrator guide"."""
    stem = PurePath(source).stem or source
    return " ".join(re.split(r"[-_\s]+", stem)).strip() or "Runbook"


# Checked in order: an explicit "pre-release" wins over "validation"; "24-hour" means after.
_KIND_PATTERNS = [
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


def guess_kind(*headings: str) -> str:
    """The kind a heading suggests, trying each heading in turn; pre-deployment by default."""
    for heading in headings:
        lowered = heading.lower()
        for kind, pattern in _KIND_PATTERNS:
            if re.search(pattern, lowered):
                return kind
    return ChecklistKind.PRE_DEPLOYMENT


_SUCCESS = re.compile(r"(pass|green|succe|complet|\bok\b|\bclean\b)")
# (key, pattern, needs a success word): first match wins, specific before general.
_KEY_PATTERNS = [
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


# Compiled once: looked up in re's cache for every item, they were half of a parse's time.
_KEY_REGEXES = [(key, re.compile(pattern), needs) for key, pattern, needs in _KEY_PATTERNS]


def guess_key(text: str) -> str:
    """The automated-check key an item's text names (tests, lint, ...), or "" for manual."""
    lowered = text.lower()
    for key, pattern, needs_success in _KEY_REGEXES:
        if pattern.search(lowered) and (not needs_success or _SUCCESS.search(lowered)):
            return key
    return ""


def is_optional(text: str) -> bool:
    return bool(re.search(r"^\W*optional\b|\(optional\)", text, re.IGNORECASE))


# --- the parser -------------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_TASK = re.compile(r"^(?P<indent>[ \t]*)(?:[-*+]|\d{1,9}[.)])[ \t]+\[(?P<mark>[ xX])\](?:[ \t]+|$)")
_LIST = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+")
_BOLD_LINE = re.compile(r"^ {0,3}(\*\*|__)(?P<text>[^*_].*?)\1[ \t]*:?[ \t]*$")
_CHECKLIST_WORD = re.compile(r"check[\s-]?list", re.IGNORECASE)


@dataclass
class _Heading:
    level: int
    name: str
    line: int
    pseudo: bool = False  # a bold line standing as a heading


def _indent_width(text: str) -> int:
    return len(text.expandtabs(4)) - len(text.expandtabs(4).lstrip())


def parse(data: bytes, *, source: str = "the file", name: str | None = None) -> ParsedRunbook:
    """Parse runbook bytes; raises RunbookError with a clear message when nothing can be made."""
    text, notes = decode(data, source)
    lines = text.count("\n") + 1
    if lines > MAX_LINES:
        raise RunbookError(
            f"{source} has {lines:,} lines; runbooks up to {MAX_LINES:,} lines can be imported. "
            "Split it into several runbooks."
        )
    headings, items = _scan(_without_front_matter(text), source)
    if not items:
        raise RunbookError(
            f"{source} has no task-list items (lines like '- [ ] Tests pass'); nothing to import."
        )
    h1s = [h for h in headings if h.level == 1 and not h.pseudo]
    title = h1s[0].name if h1s else name_from_source(source)
    title_line = h1s[0].line if len(h1s) == 1 else None
    checklists = _group(items, title, title_line)
    _name_checklists(checklists, title, (name or "").strip())
    return ParsedRunbook(source=source, title=title, checklists=checklists, notes=notes)


@dataclass
class _Found:
    item: DetectedItem
    path: list[_Heading]  # headings from the outermost to the nearest


def _without_front_matter(text: str) -> str:
    """Blank out a leading YAML front-matter block, keeping line numbers."""
    lines = text.split("\n")
    if lines[0].strip() != "---":
        return text
    for end, line in enumerate(lines[1:], start=1):
        if line.strip() in ("---", "..."):
            return "\n" * end + "\n".join(lines[end + 1 :])
    return text


def _scan(text: str, source: str) -> tuple[list[_Heading], list[_Found]]:
    """One pass over the lines; each line's work is bounded, so the whole is linear."""
    headings: list[_Heading] = []
    stack: list[_Heading] = []
    found: list[_Found] = []
    fence: str | None = None
    in_comment = False
    open_item: tuple[DetectedItem, int] | None = None  # the item a continuation line extends
    previous_plain: tuple[str, int] | None = None  # a paragraph line a setext underline may claim
    # A wrapped item's lines, joined once at the end: joining at each line (and guessing its key
    # again) copied the growing text every time, quadratic in the length of the item.
    wrapped: dict[int, list[str]] = {}
    wrapped_chars: dict[int, int] = {}

    def too_long(number: int) -> RunbookError:
        return RunbookError(
            f"{source}: the task-list item on line {number} is longer than {MAX_ITEM_CHARS:,} "
            "characters (with its wrapped lines); shorten it."
        )

    def push(heading: _Heading) -> None:
        while stack and (stack[-1].level >= heading.level):
            stack.pop()
        stack.append(heading)
        headings.append(heading)

    for number, raw in enumerate(text.split("\n"), start=1):
        if fence is not None:
            stripped = raw.strip()
            if stripped.startswith(fence) and set(stripped) <= {fence[0]}:
                fence = None
            continue
        if in_comment:
            in_comment = "-->" not in raw
            continue
        line = _QUOTE.sub("", raw)
        fenced = _FENCE.match(line)
        if fenced:
            fence, open_item, previous_plain = fenced.group(1), None, None
            continue
        if line.lstrip().startswith("<!--"):
            in_comment = "-->" not in line
            open_item = previous_plain = None
            continue
        if not line.strip():
            open_item = previous_plain = None
            continue

        atx = _ATX.match(line)
        setext = _SETEXT.match(line)
        if atx:
            raw_name = re.sub(r"[ \t]+#+$", "", atx.group(2) or "")
            push(_Heading(len(atx.group(1)), clean_heading(raw_name), number))
            open_item = previous_plain = None
            continue
        if setext and previous_plain is not None:
            level = 1 if setext.group(1).startswith("=") else 2
            push(_Heading(level, clean_heading(previous_plain[0]), previous_plain[1]))
            open_item = previous_plain = None
            continue

        task = _TASK.match(line)
        if task:
            item_text = line[task.end() :].strip()
            previous_plain = None
            if not item_text:
                open_item = None
                continue
            if len(found) == MAX_ITEMS:
                raise RunbookError(
                    f"{source} has more than {MAX_ITEMS:,} task-list items (line {number} is "
                    f"item {MAX_ITEMS + 1:,}); split it into several runbooks."
                )
            if len(item_text) > MAX_ITEM_CHARS:
                raise too_long(number)
            item = DetectedItem(
                text=item_text,
                key=guess_key(item_text),
                required=not is_optional(item_text),
                line=number,
            )
            found.append(_Found(item, list(stack)))
            open_item = (item, _indent_width(task.group("indent")))
            continue

        if open_item is not None and not _LIST.match(line):
            item, indent = open_item
            if _indent_width(line) > indent:
                # A wrapped item: its text goes on, indented, on the next line.
                part = line.strip()
                chars = wrapped_chars.get(item.line, len(item.text)) + 1 + len(part)
                if chars > MAX_ITEM_CHARS:
                    raise too_long(item.line)
                wrapped_chars[item.line] = chars
                wrapped.setdefault(item.line, [item.text]).append(part)
                continue
        open_item = None

        bold = _BOLD_LINE.match(line)
        if bold and not _LIST.match(line):
            level = (stack[-1].level + 1) if stack else 1
            if stack and stack[-1].pseudo:
                level = stack[-1].level
            push(_Heading(level, clean_heading(bold.group("text")), number, pseudo=True))
            previous_plain = None
            continue
        previous_plain = None if _LIST.match(line) else (line.strip(), number)
    for entry in found:
        parts = wrapped.get(entry.item.line)
        if parts:
            entry.item.text = " ".join(parts)
            entry.item.key = entry.item.key or guess_key(entry.item.text)
    return headings, found


def _group(found: list[_Found], title: str, title_line: int | None) -> list[DetectedChecklist]:
    """Group items into checklists and sections, in the order they first appear."""
    root = _Heading(0, title, 0)
    checklists: dict[int, DetectedChecklist] = {}
    sections: dict[tuple[int, int], DetectedSection] = {}
    for entry in found:
        path = entry.path or [root]
        nearest = path[-1]
        owner = next((h for h in reversed(path) if _CHECKLIST_WORD.search(h.name)), None)
        if owner is None:
            # No heading calls itself a checklist: the runbook's top-level part is the checklist.
            below_title = [h for h in path if h.line != title_line]
            owner = below_title[0] if below_title else path[0]
        checklist = checklists.get(owner.line)
        if checklist is None:
            outer = [h.name for h in reversed(path[: path.index(owner)]) if h.line != title_line]
            kind = guess_kind(owner.name, *outer)
            checklist = checklists[owner.line] = DetectedChecklist(
                name=owner.name, heading=owner.name, kind=kind
            )
        section = sections.get((owner.line, nearest.line))
        if section is None:
            section = sections[(owner.line, nearest.line)] = DetectedSection(nearest.name)
            checklist.sections.append(section)
        section.items.append(entry.item)
    return list(checklists.values())


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

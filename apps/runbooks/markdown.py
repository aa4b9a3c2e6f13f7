"""The runbook read as Markdown (markdown-it-py): a flat list of blocks, each knowing its line,
the headings and bold labels around it, and the list item it sits in.

Only block structure is parsed (headings, lists, tables, fenced code with its language,
paragraphs): the inline rules are switched off, because every extractor reads the raw text of a
block and half of markdown-it's time went to inline parsing it never used.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark").enable("table")
_MD.core.ruler.disable(["inline", "text_join"])

_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_NUMBERING = re.compile(r"^(?:\(?\d+(?:\.\d+)*[.):]|\d+(?:\.\d+)+)\s+")
_EMOJI_JOINERS = {0x200D, 0xFE0E, 0xFE0F, 0x20E3}
# A paragraph (or a list item's first line) that is only a bold label: "**Escalation**:".
_LABEL = re.compile(r"^(\*\*|__)(?P<text>[^*_].*?)\1[ \t]*:?[ \t]*$")
_PLAIN_LABEL = re.compile(r"^(?P<text>[^:]{2,80}):$")
_TASK = re.compile(r"^\[(?P<mark>[ xX])\](?:[ \t]+|$)")


@functools.lru_cache(maxsize=4096)
def _is_decoration(char: str) -> bool:
    """Emoji and pictographic symbols (✅ 🚀 ⚠️ ★), but not ©, ° or №, which carry meaning."""
    code = ord(char)
    if code in _EMOJI_JOINERS or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:
        return True
    return unicodedata.category(char) == "So" and code >= 0x2190


def plain(raw: str) -> str:
    """Text without Markdown decoration: links, emphasis, backticks, emoji; one line."""
    # The character tests first: most lines hold no link or emphasis, and the regexes cost.
    text = _LINK.sub(r"\1", raw) if "[" in raw else raw
    text = text.replace("`", "")
    previous = None
    while previous != text and ("*" in text or "_" in text):
        previous = text
        text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(3), text)
    if not text.isascii():  # ASCII holds no emoji: most lines skip the per-character test
        text = "".join(char for char in text if not _is_decoration(char))
    return " ".join(text.split())


def clean_heading(raw: str) -> str:
    """A heading's words without its decoration: emoji, numbering, bold markers, links."""
    text = _NUMBERING.sub("", plain(raw))
    text = text.strip(" \t-–—:|*_#").strip()
    return text or " ".join(raw.split())


def strip_decoration(raw: str) -> str:
    """An item's text without leading emoji ("✅ Backups verified" -> "Backups verified")."""
    text = " ".join(raw.split())
    start = 0
    while start < len(text) and (_is_decoration(text[start]) or text[start] == " "):
        start += 1
    return text[start:]


def label_of(raw: str, *, plain_ok: bool = False) -> str | None:
    """The label a line is, when it is only one ("**Monitoring Checklist (every 2 hours)**:");
    with plain_ok, also "Escalation:" (a list item introducing the items under it)."""
    match = _LABEL.match(raw.strip()) or (plain_ok and _PLAIN_LABEL.match(raw.strip()))
    return clean_heading(match.group("text")) if match else None


@dataclass(frozen=True)
class Heading:
    level: int
    name: str
    line: int
    pseudo: bool = False  # a bold label standing as a heading


@dataclass
class Block:
    """One piece of the runbook: a heading, list item, paragraph, code block or table row."""

    kind: str  # "heading" | "item" | "para" | "code" | "row"
    text: str  # raw text (a code block's content; a row's cells joined by " | ")
    line: int  # 1-based
    path: tuple[Heading, ...] = ()  # headings and labels around it, outermost first
    parent: Block | None = None  # the list item it sits in
    depth: int = 0  # list nesting: 1 for a top-level item
    ordered: bool = False
    task: str | None = None  # " " or "x" for a task box
    lang: str = ""  # a code block's language
    cells: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    label: str | None = None  # an item that is only a label ("**Technical Success**")
    children: list[Block] = field(default_factory=list)

    @property
    def heading(self) -> Heading | None:
        return self.path[-1] if self.path else None

    def context(self) -> list[str]:
        """Names around the block, nearest first: parent items' labels or text, then headings."""
        names: list[str] = []
        item = self.parent
        while item is not None:
            names.append(item.label or plain(item.text))
            item = item.parent
        names.extend(h.name for h in reversed(self.path))
        return names


def read(text: str) -> list[Block]:
    """Every block of the runbook in document order (headings included)."""
    tokens = _MD.parse(text)
    blocks: list[Block] = []
    headings: list[Heading] = []
    items: list[tuple[Block, int]] = []  # open list items and their token level
    lists: list[bool] = []  # open lists: ordered?
    row: Block | None = None
    header: list[str] = []
    in_head = False

    def push(heading: Heading) -> None:
        while headings and (
            headings[-1].level >= heading.level or (headings[-1].pseudo and heading.pseudo)
        ):
            headings.pop()
        headings.append(heading)

    def add(block: Block) -> Block:
        block.path = tuple(headings)
        if items:
            block.parent = items[-1][0]
            block.parent.children.append(block)
        blocks.append(block)
        return block

    index = 0
    while index < len(tokens):
        token = tokens[index]
        kind = token.type
        line = token.map[0] + 1 if token.map else 0
        if kind == "heading_open":
            name = clean_heading(tokens[index + 1].content)
            heading = Heading(int(token.tag[1]), name, line)
            # A heading inside a list item stays with the item's context, as in the source.
            push(heading)
            blocks.append(Block("heading", tokens[index + 1].content, line, tuple(headings)))
            index += 3
            continue
        if kind in ("bullet_list_open", "ordered_list_open"):
            lists.append(kind == "ordered_list_open")
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            item = add(Block("item", "", line, depth=len(lists), ordered=lists[-1]))
            items.append((item, token.level))
        elif kind == "list_item_close":
            items.pop()
        elif kind == "paragraph_open":
            content = tokens[index + 1].content
            if items and not items[-1][0].text and token.level == items[-1][1] + 1:
                item = items[-1][0]
                if not item.children and not item.label:
                    _fill_item(item, content)
                    index += 3
                    continue
            label = label_of(content) if "\n" not in content.strip() else None
            if label and not items:
                level = headings[-1].level + 1 if headings else 1
                if headings and headings[-1].pseudo:
                    level = headings[-1].level
                push(Heading(level, label, line, pseudo=True))
            else:
                add(Block("para", content, line))
            index += 3
            continue
        elif kind in ("fence", "code_block"):
            lang = (token.info or "").strip().split(" ")[0].lower()
            add(Block("code", token.content, line + (1 if kind == "fence" else 0), lang=lang))
        elif kind == "thead_open":
            in_head, header = True, []
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            row = Block("row", "", line, header=header)
        elif kind == "tr_close" and row is not None:
            if in_head:
                header.extend(row.cells)
            else:
                row.header = header
                row.text = " | ".join(row.cells)
                add(row)
            row = None
        elif kind == "inline" and row is not None:
            row.cells.append(token.content.strip())
        index += 1
    return blocks


def _fill_item(item: Block, content: str) -> None:
    text = " ".join(content.split())
    task = _TASK.match(text)
    if task:
        item.task = task.group("mark").lower()
        text = text[task.end() :].strip()
    item.text = text
    if item.task is None:
        item.label = label_of(text, plain_ok=True)

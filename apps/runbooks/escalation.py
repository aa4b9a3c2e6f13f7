"""Escalation levels and contacts from the runbook.

Read under headings or labels that name escalation, on-call or contacts:
- one line per level: "L1 (0–15 min): engineering on-call", "Level 2 (15-30 minutes): Escalate
  to senior engineer and product manager", "3. L3: CTO", table rows (level, time, who);
- a chain on one line: "on-call 0–30 min → DevOps 30–60 → EM 1–2 h → CTO (critical only)",
  "1. Primary → 2. Secondary → 3. EM → 4. CTO".
A level starts at the lower bound of its time range; a level without a time starts where the
previous range ended, else it has none (null; saved 15 minutes after the previous level). Contacts
("Product Manager: [Name] - [Email] - [Phone]") keep their placeholders, to be filled in.
"""

from __future__ import annotations

import re

from .draft import ContactDraft, LevelDraft
from .markdown import Block, plain

_CONTEXT = re.compile(r"escalat|on-?call|contacts?|paging|incident response|who to call", re.I)
_LEVEL = re.compile(
    r"^(?:\d+[.)]\s*)?(?:L|level\s*|tier\s*|step\s*)(?P<n>\d)\b\s*(?:\((?P<time>[^)]*)\))?"
    r"\s*(?P<time2>\d[^:]*?)?\s*[:\-–—]\s*(?P<who>.+)$",
    re.I,
)
_ARROW = re.compile(r"\s*(?:→|->|⇒|=>|⟶)\s*")
_RANGE = re.compile(
    r"(?P<low>\d+(?:\.\d+)?)\s*(?P<lowunit>min(?:ute)?s?|m\b|h(?:ours?|rs?)?\b)?\s*"
    r"(?:(?:[-–—]|to)\s*(?P<high>\d+(?:\.\d+)?)|(?P<plus>\+))?\s*"
    r"(?P<unit>min(?:ute)?s?|m\b|h(?:ours?|rs?)?\b)?",
    re.I,
)
_CRITICAL_ONLY = re.compile(
    r"\(?\s*(critical|sev ?1|p1)\s*(?:incidents?\s*)?only\s*\)?|only\s+(?:for\s+)?(critical|sev ?1)"
    r"(?:\s+incidents?)?",
    re.I,
)
_VERBS = re.compile(
    r"^(?:escalate\s+to|escalate|page|notify|call|contact|loop in|involve|inform)\s+", re.I
)
_TRAILING = re.compile(
    r"\s+(?:investigation|investigates|response|responds|triage|is paged|paged|notified)$", re.I
)
_PLACEHOLDER = re.compile(r"\[[^\]]+\]")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def _minutes(value: str, unit: str | None) -> int:
    number = float(value)
    return int(number * 60) if unit and unit.lower().startswith("h") else int(number)


def _time(text: str) -> tuple[int | None, int | None]:
    """(after, until) minutes of "0–15 min", "30+ minutes", "1–2 h"; (None, None) if no time."""
    for match in _RANGE.finditer(text):
        if not (
            match.group("unit")
            or match.group("lowunit")
            or match.group("high")
            or match.group("plus")
        ):
            continue
        unit = match.group("unit") or match.group("lowunit")
        low = _minutes(match.group("low"), match.group("lowunit") or unit)
        high = _minutes(match.group("high"), unit) if match.group("high") else None
        return low, high
    return None, None


def targets(text: str) -> list[str]:
    """Who a level pages: "Escalate to senior engineer and product manager" -> two targets."""
    text = _CRITICAL_ONLY.sub("", plain(text)).strip(" .;:")
    text = _VERBS.sub("", text)
    parts = re.split(r"\s*(?:,|\+|&|/|\band\b)\s*", text)
    found = []
    for part in parts:
        part = _TRAILING.sub("", _VERBS.sub("", part.strip(" .;:-–—"))).strip()
        if part and not re.fullmatch(r"[\d\s.+–—-]+(min(utes)?|h(ours)?)?", part):
            found.append(part)
    return found


def _in_context(block: Block) -> bool:
    return any(_CONTEXT.search(name) for name in block.context()[:3])


def extract(blocks: list[Block], notes: list[str]) -> tuple[list[LevelDraft], list[ContactDraft]]:
    levels: list[LevelDraft] = []
    contacts: list[ContactDraft] = []
    for block in blocks:
        if block.kind not in ("item", "para", "row") or block.task is not None:
            continue
        if not block.text or not (_in_context(block) or _ARROW.search(block.text)):
            continue
        text = plain(block.text)
        if block.kind == "row":
            level = _from_row(block)
            if level is not None:
                levels.append(level)
            continue
        if len(_ARROW.split(text)) >= 3 and (_in_context(block) or _time(text)[0] is not None):
            levels.extend(_chain(block, text, start=len(levels) + 1))
            continue
        if not _in_context(block):
            continue
        match = _LEVEL.match(text)
        if match:
            after, _until = _time(match.group("time") or match.group("time2") or "")
            levels.append(
                LevelDraft(
                    position=int(match.group("n")),
                    after_minutes=after,
                    targets=targets(match.group("who")),
                    critical_only=bool(_CRITICAL_ONLY.search(text)),
                    line=block.line,
                    quote=text,
                )
            )
            continue
        contact = _contact(block, text)
        if contact is not None:
            contacts.append(contact)
    _fill_times(levels, notes)
    return levels, contacts


def _chain(block: Block, text: str, *, start: int) -> list[LevelDraft]:
    found: list[LevelDraft] = []
    previous_until: int | None = None
    for offset, part in enumerate(_ARROW.split(text)):
        part = re.sub(r"^\s*\d+[.)]\s*", "", part)
        part = re.sub(r"^(?:L|level\s*)\d\s*[:\-–—]?\s*", "", part, flags=re.I)
        after, until = _time(part)
        who = _RANGE.sub(" ", part) if after is not None else part
        if after is None:
            after = previous_until
        previous_until = until if until is not None else previous_until
        found.append(
            LevelDraft(
                position=start + offset,
                after_minutes=after,
                targets=targets(who),
                critical_only=bool(_CRITICAL_ONLY.search(part)),
                line=block.line,
                quote=text,
            )
        )
    return found


def _from_row(block: Block) -> LevelDraft | None:
    columns = [h.lower() for h in block.header]
    cells = dict(zip(columns, block.cells, strict=False))
    level = next((v for k, v in cells.items() if re.search(r"level|tier|step", k)), None)
    who = next(
        (
            v
            for k, v in cells.items()
            if re.search(r"who|contact|owner|escalate|team|page|notif", k)
        ),
        None,
    )
    if level is None or who is None:
        return None
    number = re.search(r"\d+", level)
    if not number:
        return None
    when = next((v for k, v in cells.items() if re.search(r"time|after|when|within|min", k)), "")
    after, _until = _time(plain(when) or plain(level))
    text = plain(block.text)
    return LevelDraft(
        position=int(number.group(0)),
        after_minutes=after,
        targets=targets(who),
        critical_only=bool(_CRITICAL_ONLY.search(text)),
        line=block.line,
        quote=text,
    )


def _contact(block: Block, text: str) -> ContactDraft | None:
    """ "Role: [Name] - [Email] - [Phone]" (placeholders kept), or one with a real address."""
    match = re.match(r"^(?P<role>[^:]{2,60}):\s*(?P<rest>.+)$", text)
    if not match or not (_PLACEHOLDER.search(match["rest"]) or _EMAIL.search(match["rest"])):
        return None
    parts = [p.strip() for p in re.split(r"\s+[-–—|]\s+|,\s*", match["rest"]) if p.strip()]
    email = next((p for p in parts if _EMAIL.fullmatch(p) or p.lower() == "[email]"), "")
    phone = next((p for p in parts if re.search(r"phone|\+?\d[\d ()-]{6,}", p, re.I)), "")
    name = next((p for p in parts if p not in (email, phone)), "")
    return ContactDraft(
        role=match["role"].strip(), name=name, email=email, phone=phone, line=block.line, quote=text
    )


def _fill_times(levels: list[LevelDraft], notes: list[str]) -> None:
    untimed = [lv for lv in levels if lv.after_minutes is None]
    if untimed and len(untimed) == len(levels):
        notes.append(
            "The escalation levels give no times; they are saved 15 minutes apart "
            "(L1 at once) unless you set them."
        )

"""Runbook bytes to text: refuse what is not a text file, decode, and repair damaged text.

Two kinds of damage are repaired, each with a note for the reader:
- bytes that are not UTF-8 (a file saved as Windows-1252): decoded as Windows-1252;
- valid UTF-8 that was once read with the wrong encoding and saved again (mojibake: `‚Äî` for
  `—` after Mac Roman, `â€”` after Windows-1252, `H∆∞·ªõng` for `Hướng`). ftfy repairs most of
  it but stops short on some Mac Roman lines (`‚úÖ` stays), so the explicit round trip
  (encode with the wrong codec, decode as UTF-8) is tried too, line by line; the candidate with
  the fewest suspicious sequences (ftfy's badness measure) wins.
"""

from __future__ import annotations

import ftfy
import ftfy.bad_codecs  # noqa: F401  (registers "sloppy-windows-1252")
from ftfy.badness import badness as _ftfy_badness

MAX_BYTES = 2 * 1024 * 1024
# How far into the file to look for the signs of a binary file.
SNIFF_BYTES = 8192


class RunbookError(Exception):
    """The file cannot be imported; the message says why, for the person who chose it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
            return repair(_newlines(text), source, notes)
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise RunbookError(f"{source} is {what}, not a Markdown runbook.")
    head = data[:SNIFF_BYTES]
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if b"\x00" in head or controls > len(head) // 10:
        raise RunbookError(f"{source} looks like a binary file, not a Markdown runbook.")
    try:
        return repair(_newlines(data.decode("utf-8")), source, [])
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


def badness(text: str) -> int:
    """ftfy's count of suspicious sequences, over the lines that can hold any.

    Mojibake is made of non-ASCII characters: an ASCII line scores 0, so only the others are
    measured (ftfy's regex over a whole 2 MB runbook took 0.6 s, most of the import's time).
    """
    if text.isascii():
        return 0
    return _ftfy_badness("\n".join(line for line in text.split("\n") if not line.isascii()))


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _round_trip(text: str, codec: str) -> tuple[str, int]:
    """Undo "UTF-8 read as `codec`" on each damaged line that allows it; (text, lines fixed)."""
    fixed = 0
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if not badness(line):
            continue
        try:
            repaired = line.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if badness(repaired) < badness(line):
            lines[number] = repaired
            fixed += 1
    return "\n".join(lines), fixed


def _first_change(before: str, after: str) -> tuple[int, str, str]:
    """The first repaired line, and what changed in it (common start and end left out)."""
    pairs = zip(before.split("\n"), after.split("\n"), strict=False)
    for number, (old, new) in enumerate(pairs, start=1):
        if old != new:
            start = 0
            while start < min(len(old), len(new)) and old[start] == new[start]:
                start += 1
            end = 0
            while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
                end += 1
            return number, old[start : len(old) - end][:12], new[start : len(new) - end][:12]
    return 0, "", ""


def repair(text: str, source: str, notes: list[str]) -> tuple[str, list[str]]:
    """Repair mojibake when the text shows it; the note says what was repaired and how."""
    before = badness(text)
    if not before:
        return text, notes
    candidates: list[tuple[int, str, str]] = []
    for codec, label in (("mac_roman", "Mac Roman"), ("sloppy-windows-1252", "Windows-1252")):
        repaired, lines = _round_trip(text, codec)
        if lines:
            candidates.append(
                (badness(repaired), repaired, f"UTF-8 once read as {label} ({lines:,} lines)")
            )
    # ftfy's defaults also straighten curly quotes and fold ligatures: keep the author's text.
    by_ftfy = ftfy.fix_text(
        text, uncurl_quotes=False, fix_latin_ligatures=False, fix_character_width=False
    )
    if by_ftfy != text:
        candidates.append((badness(by_ftfy), by_ftfy, "mixed mojibake (repaired by ftfy)"))
    if not candidates:
        return text, notes
    after, repaired, how = min(candidates, key=lambda c: c[0])
    if after >= before:
        return text, notes
    line, old, new = _first_change(text, repaired)
    note = (
        f"{source} held damaged text: {how}. It was repaired (first on line {line}: "
        f"{old!r} became {new!r}); check special characters before saving."
    )
    if after:
        note += f" {after} suspicious sequences remain."
    return repaired, [*notes, note]

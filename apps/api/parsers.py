"""The API's JSON parser: a body that the database or the code behind it cannot take is a 400
naming the place in the document, before any view sees it.

What is refused, wherever it is in the document (key or value):
- nesting deeper than MAX_DEPTH (Python's own decoder raises RecursionError near 1,000 levels);
- a NUL character (PostgreSQL text and jsonb cannot store one: psycopg raises DataError);
- a lone UTF-16 surrogate such as "\\ud800" (not encodable as UTF-8: the driver fails);
- an integer outside a 64-bit column's range, and a number too large for a float (1e400).
The body's size is Django's DATA_UPLOAD_MAX_MEMORY_SIZE (apps/core/middleware.py answers 413).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# The tokens that move through a document's structure (strings skipped whole, escapes included).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


class BadDocument(ParseError):
    """The JSON is well formed but cannot be taken (HTTP 400); `path` names where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__({"detail": f"{path}: {message}", "path": path})
        self.path = path


def _step(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000) is not allowed in text."
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (\\ud800-\\udfff) is not valid Unicode text."
    return None


def check(document: Any, *, finite: bool = True) -> None:
    """Raise BadDocument at the first thing in `document` that cannot be stored.

    Iterative (a stack, not recursion) and one pass over the document. `finite=False` lets
    NaN and infinities through for callers that refuse them item by item themselves.
    """
    stack: list[tuple[str, Any, int]] = [("$", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            problem = _bad_text(value)
            if problem:
                raise BadDocument(path, problem)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                raise BadDocument(path, "the integer is out of range (64-bit).")
        elif isinstance(value, float):
            if finite and not math.isfinite(value):
                raise BadDocument(path, "the number is out of range.")
        elif isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise BadDocument(path, f"nested deeper than {MAX_DEPTH} levels.")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    problem = _bad_text(key)
                    if problem:
                        raise BadDocument(_step(path, key), f"in the key: {problem}")
                stack.append((_step(path, key), item, depth + 1))


def _deep_path(text: str) -> str:
    """Where a document too deep for the decoder passes MAX_DEPTH (for the error message)."""
    frames: list[list[Any]] = []  # [kind, key or index, expecting a key]
    for token in _TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            if len(frames) >= MAX_DEPTH:
                break
            frames.append(["array", 0, False] if char == "[" else ["object", None, True])
        elif char in "]}":
            if frames:
                frames.pop()
        elif char == ",":
            if frames and frames[-1][0] == "array":
                frames[-1][1] += 1
            elif frames:
                frames[-1][2] = True
        elif frames and frames[-1][0] == "object" and frames[-1][2]:
            try:
                frames[-1][1] = json.loads(char)
            except ValueError:
                frames[-1][1] = char.strip('"')
            frames[-1][2] = False
    path = "$"
    for _, key, _ in frames:
        path = _step(path, key if key is not None else "")
    return path


def loads(raw: bytes | str, *, finite: bool = True) -> Any:
    """Decode and check a JSON document; ParseError (400) for anything malformed or unstorable.

    NaN and Infinity literals are parsed (as floats) so that `check` names where they are.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        document = json.loads(text, parse_constant=float)
    except RecursionError:
        raise BadDocument(_deep_path(text), f"nested deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:  # also UnicodeDecodeError, and integers of over 4,300 digits
        raise ParseError(f"JSON parse error - {exc}") from None
    check(document, finite=finite)
    return document


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with `check` applied to every document (DEFAULT_PARSER_CLASSES)."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: dict | None = None
    ) -> Any:
        return loads(stream.read())

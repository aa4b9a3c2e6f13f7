"""The import's limits hold in the new parser: files over them are refused quickly, by name."""

from __future__ import annotations

import time

import pytest

from apps.runbooks import checklists
from apps.runbooks.parsing import MAX_LINES, parse
from apps.runbooks.text import MAX_BYTES, RunbookError


def refused(data: bytes) -> tuple[str, float]:
    start = time.perf_counter()
    with pytest.raises(RunbookError) as caught:
        parse(data, source="big.md")
    return caught.value.message, time.perf_counter() - start


def test_too_many_lines_is_refused_before_parsing() -> None:
    message, took = refused(b"# R\n" + b"- [ ] x\n" * (MAX_LINES + 10))
    # The trailing newline ends a last, empty line.
    assert message.startswith(f"big.md has {MAX_LINES + 12:,} lines; runbooks up to 50,000")
    assert took < 1.0


def test_too_many_bytes_is_refused_at_once() -> None:
    message, took = refused(b"x" * (MAX_BYTES + 1))
    assert "runbooks up to 2 MB" in message and took < 0.1


def test_too_many_checklist_items_names_the_first_one_over() -> None:
    data = b"# R\n## Checklist\n" + b"- [ ] item\n" * (checklists.MAX_ITEMS + 1)
    message, _ = refused(data)
    assert message == (
        f"big.md has more than 2,000 checklist items (line {checklists.MAX_ITEMS + 3} is item "
        "2,001); split it into several runbooks."
    )


def test_an_item_too_long_is_named_by_its_line() -> None:
    data = b"# R\n## Checklist\n- [ ] " + b"word " * 500 + b"\n"
    message, _ = refused(data)
    assert message.startswith("big.md: the task-list item on line 3 is longer than 2,000")

"""Runbook import speed: MB/s of apps.runbooks.parsing.parse (decode and repair, Markdown, then
checklists, plan, criteria and escalation) on 2 MB runbooks of three shapes, beside a floor
measured in the same run (markdown-it's block parse of the same text alone, which the import
must do), and the time to refuse a file over the limits.

    .venv/bin/python bench/runbook_import.py

No database or server: the parser is a pure function.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import os  # noqa: E402

import django  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rolloutdesk.settings")
os.environ.setdefault("DEBUG", "true")
django.setup()

from apps.runbooks import checklists, parsing  # noqa: E402
from apps.runbooks.markdown import _MD  # noqa: E402
from apps.runbooks.text import MAX_BYTES, RunbookError  # noqa: E402

TARGET = 2 * 1024 * 1024 - 4096


def _fixtures() -> bytes:
    """The keyed runbooks, repeated to 2 MB (the mojibake copy left out: one repair is enough),
    with their checklist items kept under the import's item limit by prose between copies."""
    paths = sorted((ROOT / "tests" / "fixtures" / "runbooks").glob("*.md"))
    one = b"\n".join(p.read_bytes() for p in paths if "mojibake" not in p.name)
    items = sum(c.item_count for c in parsing.parse(one, source="one.md").checklists)
    copies = max(1, checklists.MAX_ITEMS // items)
    # Long paragraphs: the filler adds bytes, not lines (the import's line limit is 50,000).
    prose = b"Prose about the deployment and why each step is there. " * 18 + b"\n\n"
    filler = prose * ((TARGET // copies - len(one)) // len(prose))
    return (one + b"\n" + filler) * copies


SHAPES: dict[str, Callable[[], bytes]] = {
    "the keyed runbooks, repeated": _fixtures,
    "prose (24,000 paragraphs, 1 item)": lambda: (
        b"# R\n- [ ] Tests pass\n\n"
        + b"Prose about the deployment, a paragraph of some eighty bytes in all, more or less.\n\n"
        * 24_000
    ),
    "tables and lists (1,990 sections)": lambda: (
        b"# R\n## Checklist\n"
        + (
            b"### Part\n- [ ] Tests pass and coverage ok\n- error rate > 2 %\n\n"
            b"| Stage | Traffic | Soak |\n|---|---|---|\n| a | 5% | 1 hour |\n\n"
            + b"words " * 120
            + b"\n\n"
        )
        * 1_990
    ),
}


def best_of(runs: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def floor(data: bytes) -> None:
    _MD.parse(data.decode("utf-8", errors="replace"))


def main() -> None:
    print(f"{'shape':36} {'MB':>5} {'import MB/s':>12} {'floor MB/s':>11} {'s per MB':>9}")
    for name, make in SHAPES.items():
        data = make()[:MAX_BYTES]
        megabytes = len(data) / (1024 * 1024)
        took = best_of(3, lambda d=data: parsing.parse(d, source="bench.md"))
        base = best_of(3, lambda d=data: floor(d))
        print(
            f"{name:36} {megabytes:5.2f} {megabytes / took:12.2f} {megabytes / base:11.2f} "
            f"{took / megabytes:9.3f}"
        )
    for label, data in (
        ("60,000 lines", b"# R\n" + b"- [ ] x\n" * 60_000),
        ("over 2 MB", b"# R\n" + b"- [ ] x\n" * (MAX_BYTES // 8 + 1)),
    ):
        start = time.perf_counter()
        try:
            parsing.parse(data, source="bench.md")
        except RunbookError as exc:
            took = time.perf_counter() - start
            print(f"\n{label} ({len(data) / 1e6:.2f} MB) refused in {took * 1000:.1f} ms:")
            print(f"  {exc.message}")


if __name__ == "__main__":
    main()

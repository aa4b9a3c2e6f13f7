"""Runbook parsing speed: MB/s of apps.checklists.runbook.parse on runbook-shaped files, beside a
floor measured in the same run (decoding and splitting the same bytes into lines, which any
line-based parser must do), and the time to refuse a file over the line limit.

    .venv/bin/python bench/runbook_parse.py

No database or server: the parser is a pure function.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.checklists import runbook  # noqa: E402

SHAPES: dict[str, bytes] = {
    "the shared runbooks, repeated": b"",  # filled in below from the fixtures
    "most lines (49,000 prose, 1 item)": b"# R\n- [ ] Tests pass\n"
    + b"Prose about the deployment, forty bytes.\n" * 49_000,
    "most items (1,990 sections)": b"# R\n"
    + (b"## Part\n- [ ] Tests pass and coverage ok\n" + b"words " * 100 + b"\n") * 1_990,
}


def _fixtures() -> bytes:
    runbooks = sorted((ROOT / "tests" / "fixtures" / "runbooks").glob("*.md"))
    one = b"\n".join(path.read_bytes() for path in runbooks)
    items = max(1, one.count(b"[ ]") + one.count(b"[x]"))
    return one * max(1, min(runbook.MAX_ITEMS // items, runbook.MAX_LINES // one.count(b"\n")))


def best_of(runs: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def floor(data: bytes) -> None:
    data.decode("utf-8", errors="replace").split("\n")


def main() -> None:
    SHAPES["the shared runbooks, repeated"] = _fixtures()
    print(f"{'shape':38} {'MB':>6} {'parse MB/s':>11} {'floor MB/s':>11} {'ms':>8}")
    for name, data in SHAPES.items():
        megabytes = len(data) / 1e6
        parse = best_of(5, lambda d=data: runbook.parse(d, source="bench.md"))
        base = best_of(5, lambda d=data: floor(d))
        print(
            f"{name:38} {megabytes:6.2f} {megabytes / parse:11.1f} {megabytes / base:11.1f} "
            f"{parse * 1000:8.1f}"
        )
    refused = b"# R\n" + b"- [ ] x\n" * 260_000
    start = time.perf_counter()
    try:
        runbook.parse(refused, source="bench.md")
    except runbook.RunbookError as exc:
        took = time.perf_counter() - start
        print(
            f"\n260,000 task lines ({len(refused) / 1e6:.2f} MB) refused in {took * 1000:.1f} ms:"
        )
        print(f"  {exc.message}")


if __name__ == "__main__":
    main()

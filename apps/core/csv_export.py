"""Every CSV the product writes goes through here, so no cell can run as a spreadsheet formula."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

# A spreadsheet evaluates a cell that starts with one of these (OWASP "CSV injection"):
# =HYPERLINK(...) or @SUM(...) typed as a version or a service name would run on opening.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def neutralise(value: Any) -> Any:
    """A text cell that would start a formula gets a leading single quote; numbers stay numbers
    (a float such as -0.5 cannot be a formula, and stays summable)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class DictWriter:
    """csv.DictWriter whose every cell is neutralised; None is written as an empty cell."""

    def __init__(self, file: _Writable, fieldnames: Sequence[str]) -> None:
        self.fieldnames = list(fieldnames)
        self._writer = csv.writer(file)

    def writeheader(self) -> None:
        self._writer.writerow([neutralise(name) for name in self.fieldnames])

    def writerow(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow(
            ["" if row.get(key) is None else neutralise(row.get(key)) for key in self.fieldnames]
        )

    def writerows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.writerow(row)

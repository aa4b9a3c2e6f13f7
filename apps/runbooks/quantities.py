"""Numbers with units as runbooks write them: durations ("5m", "24–48 hours", "1-2 h"), YAML
values with line numbers."""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

UNIT = r"(?:seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|wks?|w)\b"
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_COMPACT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_COMPOUND = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def unit_seconds(unit: str) -> float:
    """Seconds in one unit: "minutes" -> 60; "ms" -> 0.001."""
    unit = unit.lower().strip()
    if unit in ("ms", "msec", "millisecond", "milliseconds"):
        return 0.001
    if unit.startswith("mo"):
        return 30 * 86400
    if unit.startswith("mi") or unit == "m":
        return 60
    return _SECONDS.get(unit[:1], 1)


def duration_seconds(value: Any) -> int | None:
    """A duration given as 300, "5m", "1h30m", "2 hours" or "48h"; None when it is none."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+", text):
        return int(text)
    parts = _COMPOUND.findall(text.replace(" ", ""))
    if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
        return int(sum(float(n) * unit_seconds(u) for n, u in parts))
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(" + UNIT + ")", text)
    if match:
        return int(float(match.group(1)) * unit_seconds(match.group(2)))
    return None


def human(seconds: int) -> str:
    """A duration for a note: 86400 -> "24 hours"."""
    for size, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            if name == "day" and count == 1:
                return "24 hours"
            return f"{count} {name}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that notes each mapping's first line in the key "__line__" (0-based)."""


def _mapping_with_line(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


# The plan and the criteria read the same code blocks: parse each once (the result is only read).
@functools.lru_cache(maxsize=512)
def load_yaml(content: str) -> Any:
    """The YAML document(s) of a code block (a list for several), or None if it is not YAML."""
    try:
        documents = [d for d in yaml.load_all(content, Loader=_LineLoader) if d is not None]
    except yaml.YAMLError:
        return None
    if not documents:
        return None
    return documents[0] if len(documents) == 1 else documents

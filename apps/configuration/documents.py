"""The document as YAML text: read (YAML or JSON, which is YAML too) and written."""

from __future__ import annotations

from typing import Any

import yaml

from .apply import ConfigError

HEADER = (
    "# rolloutdesk configuration (docs/configuration.md); schema: /api/v1/config/schema.json\n"
    "# Apply with `manage.py apply_config FILE [--dry-run]` or POST /api/v1/config/apply.\n"
)


def dump(document: dict[str, Any]) -> str:
    """YAML in the document's own key order, strings with newlines as blocks."""
    return HEADER + yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100
    )


def load(text: str | bytes) -> Any:
    """The document in the text; a ConfigError naming the line when it is not YAML."""
    try:
        # Aliases refused: a few lines of them can stand for billions of nodes ("billion
        # laughs"), and a configuration file never needs them.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                raise ConfigError(
                    [f"line {mark.line + 1}: YAML aliases (*name) are not accepted; write it out."]
                )
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}not valid YAML ({problem})"]) from exc


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)

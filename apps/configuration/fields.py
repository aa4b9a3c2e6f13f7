"""Which columns of each configured model the YAML carries, how their values read, and their
JSON Schema: read from the models themselves, so a field added to a plan, a criterion or a
policy appears in the export, the apply and the schema without a second list to keep.

A column is carried when it is editable, not a relation, not the key, not a timestamp the row
keeps for itself and not in the model's `SKIP` (positions, which the file's order gives;
versions and provenance, which the database keeps).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.fields import PositiveIntegerRelDbTypeMixin
from django.utils.dateparse import parse_datetime, parse_time

# Per model label: columns the file does not carry (besides keys, relations and timestamps).
SKIP: dict[str, set[str]] = {
    "releases.stagetemplate": {"position"},
    "checklists.checklisttemplate": {"version", "is_current", "source", "created_by"},
    "checklists.templatesection": {"position"},
    "checklists.templateitem": {"position"},
    "incidents.escalationlevel": {"position"},
}
# Columns named as the key of their object in the file (and so not repeated among its fields).
KEYS: dict[str, set[str]] = {
    "releases.environment": {"slug"},
    "releases.rolloutplan": {"slug"},
    "releases.service": {"slug"},
    "checks.metricdefinition": {"key"},
    "checklists.checklisttemplate": {"name"},
    "signoffs.freezewindow": {"name"},
    "incidents.escalationpolicy": {"name"},
    "incidents.routingrule": {"name"},
}

SPAN = re.compile(r"^(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$")
SPAN_PATTERN = r"^(\d+d)?\s*(\d+h)?\s*(\d+m)?\s*(\d+s)?$"


class FieldError(ValueError):
    """A value of the file that does not fit its column (the message names what is expected)."""


def carried(model: type[models.Model]) -> list[models.Field]:
    """The columns of `model` the file carries, in the model's order."""
    label = model._meta.label_lower
    skip = SKIP.get(label, set()) | KEYS.get(label, set())
    found = []
    for field in model._meta.concrete_fields:
        if field.primary_key or field.is_relation or not field.editable:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            continue
        if field.name in skip or field.name in {"created_at", "updated_at", "created_by"}:
            continue
        found.append(field)
    return found


def format_span(delta: timedelta) -> str:
    """A length as the file writes it: "1d 2h", "30m", "90s" -> "1m 30s", "0s"."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
    ]
    return " ".join(p for p in parts if not p.startswith("0"))


def parse_span(value: Any) -> timedelta:
    if isinstance(value, bool):
        raise FieldError("a length such as 30m, 1h 30m or 2d, or a number of seconds")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = SPAN.match(str(value).strip())
    if not match or not any(match.groups()):
        raise FieldError(f"{value!r} is not a length such as 30m, 1h 30m, 2d or 45s")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def to_file(field: models.Field, value: Any) -> Any:
    """A column's value as the YAML writes it."""
    if value is None:
        return None
    if isinstance(field, models.DurationField):
        return format_span(value)
    if isinstance(field, models.DateTimeField):
        return value.isoformat()
    if isinstance(field, models.TimeField):
        return value.strftime("%H:%M") if not value.second else value.strftime("%H:%M:%S")
    return value


def from_file(field: models.Field, value: Any) -> Any:
    """The file's value as the column holds it (FieldError when it cannot be one)."""
    if value is None:
        if not field.null:
            raise FieldError("may not be empty (null)")
        return None
    if isinstance(field, models.DurationField):
        return parse_span(value)
    if isinstance(field, models.DateTimeField):
        parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
        if parsed is None or parsed.tzinfo is None:
            raise FieldError(
                f"{value!r} is not a time with its zone, e.g. 2026-12-24T18:00:00+00:00"
            )
        return parsed
    if isinstance(field, models.TimeField):
        parsed = value if isinstance(value, time) else parse_time(str(value))
        if parsed is None:
            raise FieldError(f"{value!r} is not a time of day such as 09:30")
        return parsed
    if isinstance(field, models.FloatField):
        return float(value)
    return value


def schema_of(field: models.Field) -> dict[str, Any]:
    """The JSON Schema of one column's value."""
    if isinstance(field, models.DurationField):
        schema: dict[str, Any] = {
            "oneOf": [{"type": "string", "pattern": SPAN_PATTERN}, {"type": "number"}],
            "description": "A length: 30m, 1h 30m, 2d, 45s, or seconds.",
        }
    elif isinstance(field, models.DateTimeField):
        schema = {"type": "string", "format": "date-time"}
    elif isinstance(field, models.TimeField):
        schema = {"type": "string", "pattern": r"^\d{1,2}:\d{2}(:\d{2})?$"}
    elif isinstance(field, models.BooleanField):
        schema = {"type": "boolean"}
    elif isinstance(field, models.IntegerField):
        schema = {"type": "integer"}
        if isinstance(field, PositiveIntegerRelDbTypeMixin):
            schema["minimum"] = 0
    elif isinstance(field, models.FloatField):
        schema = {"type": "number"}
    else:
        schema = {"type": "string"}
        if getattr(field, "max_length", None):
            schema["maxLength"] = field.max_length
    for validator in field.validators:
        if isinstance(validator, MinValueValidator) and not callable(validator.limit_value):
            schema["minimum"] = validator.limit_value
        if isinstance(validator, MaxValueValidator) and not callable(validator.limit_value):
            schema["maximum"] = validator.limit_value
    if field.choices:
        values = [value for value, _ in field.flatchoices]
        if field.blank and "" not in values and schema.get("type") == "string":
            values.append("")
        schema = {"enum": values}
    if field.help_text:
        schema["description"] = str(field.help_text)
    if field.null:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def properties(model: type[models.Model]) -> dict[str, Any]:
    return {field.name: schema_of(field) for field in carried(model)}


def row(obj: models.Model) -> dict[str, Any]:
    """An object's carried columns as the file writes them."""
    return {f.name: to_file(f, getattr(obj, f.name)) for f in carried(type(obj))}

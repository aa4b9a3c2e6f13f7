"""The admin's review of a draft: every extracted item as a row with its source line, editable
and untickable, and the reviewed draft read back from the submitted form.

The draft travels from the upload to the save signed (it cannot be altered in between); the form
carries only the reviewer's edits, applied to that draft by `apply_edits`, whose result goes to
`draft.from_json` and `saving.save_draft` like an API import.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from django.core import signing
from django.http import QueryDict

from apps.checklists.choices import ChecklistKind
from apps.checks.choices import Comparator, CriticalAction, WarningAction

from .draft import Draft

PAYLOAD_SALT = "runbooks.review"
PAYLOAD_MAX_AGE = 6 * 3600  # an old review asks for the file again
QUOTE_MAX = 300


def source_lines(text: str, draft: Draft) -> dict[str, str]:
    """The runbook's lines that the draft's items came from, to quote beside each (by number)."""
    wanted = {stage.line for stage in draft.plan.stages}
    wanted |= {c.line for c in draft.criteria}
    wanted |= {lv.line for lv in draft.escalation.levels}
    wanted |= {i.line for c in draft.checklists for s in c.sections for i in s.items}
    lines = text.split("\n")
    return {str(n): lines[n - 1].strip()[:QUOTE_MAX] for n in sorted(wanted) if 0 < n <= len(lines)}


def sign(payload: dict[str, Any]) -> str:
    return signing.dumps(payload, salt=PAYLOAD_SALT, compress=True)


def unsign(value: str) -> dict[str, Any]:
    """The payload a review page was made from; signing.BadSignature if altered or too old."""
    return signing.loads(value, salt=PAYLOAD_SALT, max_age=PAYLOAD_MAX_AGE)


@dataclass
class Row:
    """One reviewable item: its form prefix, current values, and the source line it came from."""

    prefix: str
    line: int
    quote: str
    values: dict[str, Any]
    kept: bool = True


@dataclass
class Review:
    stages: list[Row] = field(default_factory=list)
    criteria: list[Row] = field(default_factory=list)
    levels: list[Row] = field(default_factory=list)
    checklists: list[dict[str, Any]] = field(default_factory=list)
    plan_name: str = ""


def _quote(lines: dict[str, str], line: int) -> str:
    return lines.get(str(line), "")


def rows(draft: dict[str, Any], lines: dict[str, str], post: QueryDict | None = None) -> Review:
    """The review page's rows for a draft (as_json shape); with `post`, as the reviewer left
    them."""

    def value(prefix: str, name: str, default: Any) -> Any:
        if post is None:
            return default
        return post.get(f"{prefix}-{name}", "")

    def kept(prefix: str) -> bool:
        return True if post is None else f"{prefix}-keep" in post

    review = Review(plan_name=value("plan", "name", draft["plan"]["name"]))
    for n, s in enumerate(draft["plan"]["stages"]):
        p = f"stage-{n}"
        review.stages.append(
            Row(
                p,
                s["line"],
                _quote(lines, s["line"]),
                {
                    "name": value(p, "name", s["name"]),
                    "environment": value(p, "environment", s["environment"]),
                    "traffic_percentage": value(p, "traffic_percentage", s["traffic_percentage"]),
                    "min_soak_seconds": value(p, "min_soak_seconds", s["min_soak_seconds"]),
                },
                kept(p),
            )
        )
    for n, c in enumerate(draft["criteria"]):
        p = f"criterion-{n}"
        threshold = "" if c["threshold"] is None else c["threshold"]
        review.criteria.append(
            Row(
                p,
                c["line"],
                _quote(lines, c["line"]),
                {
                    "metric": value(p, "metric", c["metric"]),
                    "operator": value(p, "operator", c["operator"]),
                    "threshold": value(p, "threshold", threshold),
                    "unit": c["unit"],
                    "for_seconds": value(p, "for_seconds", c["for_seconds"]),
                    "severity": value(p, "severity", c["severity"]),
                    "action": value(p, "action", c["action"]),
                    "source": c["source"]["kind"],
                },
                kept(p),
            )
        )
    for n, lv in enumerate(draft["escalation"]["levels"]):
        p = f"level-{n}"
        after = "" if lv["after_minutes"] is None else lv["after_minutes"]
        review.levels.append(
            Row(
                p,
                lv["line"],
                _quote(lines, lv["line"]),
                {
                    "position": lv["position"],
                    "after_minutes": value(p, "after_minutes", after),
                    "targets": value(p, "targets", ", ".join(lv["targets"])),
                    "critical_only": lv["critical_only"]
                    if post is None
                    else f"{p}-critical_only" in post,
                },
                kept(p),
            )
        )
    for n, checklist in enumerate(draft["checklists"]):
        p = f"checklist-{n}"
        items = []
        for m, section in enumerate(checklist["sections"]):
            for k, item in enumerate(section["items"]):
                ip = f"item-{n}-{m}-{k}"
                items.append(
                    Row(
                        ip,
                        item["line"],
                        _quote(lines, item["line"]),
                        {
                            "section": section["name"],
                            "text": value(ip, "text", item["text"]),
                            "key": value(ip, "key", item["key"]),
                        },
                        kept(ip),
                    )
                )
        review.checklists.append(
            {
                "prefix": p,
                "name": value(p, "name", checklist["name"]),
                "kind": value(p, "kind", checklist["kind"]),
                "items": items,
            }
        )
    return review


class EditError(ValueError):
    """A field of the review form that cannot be read (a traffic that is no number)."""


def _int(post: QueryDict, name: str, label: str, *, blank: bool = False) -> int | None:
    raw = post.get(name, "").strip()
    if raw == "" and blank:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise EditError(f"{label}: {raw!r} is not a whole number.") from exc


def apply_edits(draft: dict[str, Any], post: QueryDict) -> tuple[dict[str, Any], list[str]]:
    """The draft as the reviewer left it: unticked rows dropped, edited fields taken."""
    edited = copy.deepcopy(draft)
    errors: list[str] = []

    def read(func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EditError as exc:
            errors.append(str(exc))
            return None

    edited["plan"]["name"] = post.get("plan-name", draft["plan"]["name"]).strip()
    stages = []
    for n, stage in enumerate(draft["plan"]["stages"]):
        p = f"stage-{n}"
        if f"{p}-keep" not in post:
            continue
        label = f"stage on line {stage['line']}"
        stages.append(
            {
                **stage,
                "name": post.get(f"{p}-name", "").strip(),
                "environment": post.get(f"{p}-environment", "").strip(),
                "traffic_percentage": read(_int, post, f"{p}-traffic_percentage", label) or 0,
                "min_soak_seconds": read(_int, post, f"{p}-min_soak_seconds", label) or 0,
            }
        )
    edited["plan"]["stages"] = stages
    criteria = []
    for n, criterion in enumerate(draft["criteria"]):
        p = f"criterion-{n}"
        if f"{p}-keep" not in post:
            continue
        raw = post.get(f"{p}-threshold", "").strip()
        threshold: float | None = None
        if raw:
            try:
                threshold = float(raw)
            except ValueError:
                errors.append(f"criterion on line {criterion['line']}: {raw!r} is not a number.")
        criteria.append(
            {
                **criterion,
                "metric": post.get(f"{p}-metric", "").strip(),
                "operator": post.get(f"{p}-operator", ""),
                "threshold": threshold,
                "for_seconds": read(_int, post, f"{p}-for_seconds", f"line {criterion['line']}")
                or 0,
                "severity": post.get(f"{p}-severity", criterion["severity"]),
                "action": post.get(f"{p}-action", criterion["action"]),
            }
        )
    edited["criteria"] = criteria
    levels = []
    for n, level in enumerate(draft["escalation"]["levels"]):
        p = f"level-{n}"
        if f"{p}-keep" not in post:
            continue
        targets = [t.strip() for t in post.get(f"{p}-targets", "").split(",") if t.strip()]
        levels.append(
            {
                **level,
                "after_minutes": read(
                    _int, post, f"{p}-after_minutes", f"level L{level['position']}", blank=True
                ),
                "targets": targets,
                "critical_only": f"{p}-critical_only" in post,
            }
        )
    edited["escalation"]["levels"] = levels
    checklists = []
    for n, checklist in enumerate(draft["checklists"]):
        p = f"checklist-{n}"
        sections = []
        for m, section in enumerate(checklist["sections"]):
            items = []
            for k, item in enumerate(section["items"]):
                ip = f"item-{n}-{m}-{k}"
                if f"{ip}-keep" not in post:
                    continue
                items.append(
                    {
                        **item,
                        "text": post.get(f"{ip}-text", "").strip(),
                        "key": post.get(f"{ip}-key", "").strip(),
                    }
                )
            if items:
                sections.append({**section, "items": items})
        if sections:
            checklists.append(
                {
                    **checklist,
                    "name": post.get(f"{p}-name", checklist["name"]).strip(),
                    "kind": post.get(f"{p}-kind", checklist["kind"]),
                    "sections": sections,
                }
            )
    edited["checklists"] = checklists
    return edited, errors


CHOICES = {
    "operators": Comparator.values,
    "critical_actions": CriticalAction.choices,
    "warning_actions": WarningAction.choices,
    "kinds": ChecklistKind.choices,
}

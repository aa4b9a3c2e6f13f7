"""The rollout plan from the runbook: stages with environment, traffic and minimum soak.

Stages are read where a runbook describes its rollout: under headings that name a rollout,
phases, stages, a deployment process or traffic ("Rollout Phases", "Phase 3: Gradual traffic
increase"), and from stage tables or YAML stage lists anywhere. Within one such section:
- a YAML list of stages (`traffic_percentage: 20`, `setWeight: 20` + `pause`) gives its stages;
- else a table with a traffic column gives a stage per row;
- else list items that each carry a traffic share give a stage each ("Day 8: 10% of traffic");
- else a line listing several shares gives a stage per share ("at each level: 5 %, 10 %, 25 %");
- else one share in the section (prose, or a config line such as `CANARY_PERCENTAGE=25`) makes
  the section one stage; a "Phase N" section without any share is a stage at 0 % (staging).
Soaks come from "monitor for 48 hours" (a range takes its lower bound, with a note), else from a
day schedule ("Day 1-3", "Day 8", "Week 2": until the next stage starts). Two stages in a row at
the same traffic in the same environment are one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .draft import StageDraft
from .markdown import Block, Heading, plain
from .quantities import UNIT, duration_seconds, human, load_yaml, unit_seconds

NAME_MAX_LENGTH = 80

_REGION = re.compile(
    r"\b(roll-?outs?|phases?|stages?|deployment process|deployment plan|release plan|traffic"
    r"|schedule|timeline|waves?|rings?|canary rollout)\b",
    re.IGNORECASE,
)
_NOT_REGION = re.compile(
    r"roll-?back|troubleshoot|common issues|alert|escalat|contacts?|checklist", re.IGNORECASE
)
_STAGE_HEAD = re.compile(r"^(phase|stage|step|wave|ring|week|day)\s*\d+", re.IGNORECASE)
_PCT = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d+)?)\s?%")
_TRAFFIC_WORDS = re.compile(
    r"traffic|users|requests|roll-?out|canary|exposure|fleet|customers|cohort|beta|internal"
    r"|weight|levels?|ramp|split|of (all )?(sessions|orgs|tenants|accounts)",
    re.IGNORECASE,
)
_THRESHOLD_WORDS = re.compile(
    r"[<>≤≥=]|\b(errors?|latency|cpu|memory|usage|coverage|accuracy|uptime|rate|threshold"
    r"|target|exceeds?|below|above|under|over|confidence|improvement|success|budget|hit"
    r"|satisfaction|score|p\d\d)\b",
    re.IGNORECASE,
)
_CONFIG = re.compile(
    r"\b([A-Za-z_][\w.-]*(?:percent(?:age)?|weight|traffic)[\w.-]*)\s*[:=]\s*[\"']?"
    r"(\d{1,3}(?:\.\d+)?)\b",
    re.IGNORECASE,
)
_SOAK_RANGE = re.compile(
    r"\b(?:monitor|soak|wait|observe|bake|hold|watch|stay|remain|run)\w*\b[^.;\n]{0,40}?"
    r"(\d+(?:\.\d+)?)\s*(?:[-–—]|to)\s*(\d+(?:\.\d+)?)\s*(" + UNIT + ")",
    re.IGNORECASE,
)
_SOAK = re.compile(
    r"\b(?:monitor|soak|wait|observe|bake|hold|watch|stay|remain)\w*\b[^.;\n\d]{0,40}?"
    r"(\d+(?:\.\d+)?)\s*(" + UNIT + r")|(\d+(?:\.\d+)?)\s*(" + UNIT + r")\s+(?:soak|bake)\b",
    re.IGNORECASE,
)
_DAYS = re.compile(r"\b(day|week)s?\s+(\d+)(?:\s*(?:[-–—]|to)\s*(\d+))?(?!\s*%)", re.IGNORECASE)
_STAGING = re.compile(r"\b(staging|pre-?prod(uction)?|stage environment)\b", re.IGNORECASE)
_PRODUCTION = re.compile(r"\b(production|prod)\b", re.IGNORECASE)
_PHASE_PREFIX = re.compile(r"^(phase|stage|step|wave|ring|week|day)\s*\d+\s*[:.–—-]?\s*", re.I)
_TRAILING_PARENS = re.compile(r"\s*\((day|days|week|weeks)\b[^)]*\)\s*$", re.IGNORECASE)


@dataclass
class _Stage:
    name: str
    line: int
    quote: str
    traffic: float
    environment: str = ""
    soak: int | None = None
    start_day: int | None = None
    end_day: int | None = None


def traffic_shares(text: str) -> list[float]:
    """The traffic shares a line names ("Enable for 5% of beta users"), thresholds left out."""
    found: list[float] = []
    line = plain(text)
    for match in _PCT.finditer(line):
        clause = re.split(r"[,;:(—–]| - ", line[: match.start()])[-1]
        if _THRESHOLD_WORDS.search(clause[-30:]):
            continue
        after = line[match.end() : match.end() + 30]
        if re.match(r"\s*(error|latency|cpu|memory|uptime|coverage|of errors)", after, re.I):
            continue
        if line[: match.start()].strip() == "" or _TRAFFIC_WORDS.search(line):
            found.append(float(match.group(1)))
    return found


def _environment(*texts: str) -> str:
    for text in texts:
        if _STAGING.search(text):
            return "staging"
        if _PRODUCTION.search(text):
            return "production"
    return ""


def _soak(text: str, line: int, notes: list[str]) -> int | None:
    text = plain(text)
    ranged = _SOAK_RANGE.search(text)
    if ranged:
        low = float(ranged.group(1)) * unit_seconds(ranged.group(3))
        notes.append(
            f"line {line}: the soak {ranged.group(1)}–{ranged.group(2)} {ranged.group(3)} is a "
            f"range; the minimum soak takes its lower bound, {human(int(low))}."
        )
        return int(low)
    single = _SOAK.search(text)
    if single:
        number, unit = single.group(1) or single.group(3), single.group(2) or single.group(4)
        return int(float(number) * unit_seconds(unit))
    return None


def _days(text: str) -> tuple[int | None, int | None]:
    match = _DAYS.search(plain(text))
    if not match:
        return None, None
    start, end = int(match.group(2)), int(match.group(3)) if match.group(3) else None
    if match.group(1).lower() == "week":
        return (start - 1) * 7 + 1, (end or start) * 7
    return start, end


def _name(text: str) -> str:
    bold = re.match(r"^\s*(\*\*|__)(.+?)\1", text)
    name = plain(bold.group(2)) if bold else plain(text)
    name = _TRAILING_PARENS.sub("", name).strip(" :-–—")
    return name[: NAME_MAX_LENGTH - 1] + "…" if len(name) > NAME_MAX_LENGTH else name


def _heading_name(heading: Heading) -> str:
    name = _PHASE_PREFIX.sub("", heading.name) or heading.name
    return _name(name)


def in_plan_region(block: Block, title_line: int | None) -> bool:
    """Is the block under a heading that describes the rollout (and not a rollback)?"""
    for heading in reversed(block.path):
        if heading.line == title_line:
            break
        if _NOT_REGION.search(heading.name):
            return False
        if _REGION.search(heading.name) or _STAGE_HEAD.match(heading.name):
            return True
    return False


def _nearest_real(block: Block) -> Heading | None:
    return next((h for h in reversed(block.path) if not h.pseudo), None)


def extract(blocks: list[Block], *, title_line: int | None, notes: list[str]) -> list[StageDraft]:
    """The plan's stages in the runbook's order."""
    units: dict[int, tuple[Heading | None, list[Block]]] = {}
    children_heads: set[int] = set()
    for block in blocks:
        if block.kind == "heading":
            heading = block.path[-1]
            parent = next((h for h in reversed(block.path[:-1]) if not h.pseudo), None)
            if parent is not None and _STAGE_HEAD.match(heading.name):
                children_heads.add(parent.line)
            units.setdefault(heading.line, (heading, []))
            continue
        nearest = _nearest_real(block)
        key = nearest.line if nearest else 0
        units.setdefault(key, (nearest, []))[1].append(block)

    stages: list[_Stage] = []
    for heading, own in units.values():
        if heading is None or heading.line == title_line:
            stages.extend(_yaml_stages(own, notes))
            stages.extend(_table_stages(own))
            continue
        probe = own[0] if own else None
        region = (
            in_plan_region(probe, title_line)
            if probe is not None
            else bool(_REGION.search(heading.name) or _STAGE_HEAD.match(heading.name))
        )
        if not region:
            stages.extend(_yaml_stages(own, notes))
            stages.extend(_table_stages(own))
            continue
        stages.extend(_unit_stages(heading, own, heading.line in children_heads, notes))
    return _finish(stages, notes)


def _yaml_stages(own: list[Block], notes: list[str]) -> list[_Stage]:
    found: list[_Stage] = []
    for block in own:
        if block.kind != "code" or block.lang not in ("yaml", "yml", ""):
            continue
        data = load_yaml(block.text)
        steps = _stage_list(data)
        if not steps:
            continue
        lines = block.text.split("\n")
        pending: _Stage | None = None
        for step in steps:
            if not isinstance(step, dict):
                continue
            line = block.line + int(step.get("__line__", 0))
            quote = lines[line - block.line].strip() if 0 <= line - block.line < len(lines) else ""
            pause = step.get("pause")
            if pause is not None and pending is not None and len(step) <= 2:
                duration = pause.get("duration") if isinstance(pause, dict) else pause
                pending.soak = duration_seconds(duration)
                continue
            traffic = next(
                (
                    v
                    for k, v in step.items()
                    if re.search(r"percent|weight|traffic", str(k), re.I)
                    and isinstance(v, int | float)
                ),
                None,
            )
            if traffic is None:
                continue
            name = str(step.get("name") or step.get("stage") or step.get("phase") or "")
            soak_value = next(
                (
                    v
                    for k, v in step.items()
                    if re.search(r"soak|duration|bake|wait|monitor|pause", str(k), re.I)
                ),
                None,
            )
            if isinstance(soak_value, dict):
                soak_value = soak_value.get("duration")
            environment = str(step.get("environment") or step.get("env") or "")
            pending = _Stage(
                name=_name(name) if name else f"{traffic:g}%",
                line=line,
                quote=quote,
                traffic=float(traffic),
                environment=environment.lower(),
                soak=duration_seconds(soak_value),
            )
            found.append(pending)
    return found


def _stage_list(data: Any) -> list[Any]:
    if isinstance(data, list) and any(isinstance(step, dict) for step in data):
        steps = [s for s in data if isinstance(s, dict)]
        if any(any(re.search(r"percent|weight|traffic", str(k), re.I) for k in s) for s in steps):
            return steps
        return []
    if isinstance(data, dict):
        for key, value in data.items():
            if re.search(r"stages|steps|phases|rollout|canary|strategy|spec", str(key), re.I):
                found = _stage_list(value)
                if found:
                    return found
    return []


def _table_stages(own: list[Block]) -> list[_Stage]:
    found: list[_Stage] = []
    for block in own:
        if block.kind != "row" or not block.header:
            continue
        columns = [h.lower() for h in block.header]
        traffic_col = next(
            (i for i, h in enumerate(columns) if re.search(r"traffic|%|percent|exposure", h)),
            None,
        )
        if traffic_col is None or traffic_col >= len(block.cells):
            continue
        share = _PCT.search(block.cells[traffic_col]) or re.search(
            r"\d{1,3}", block.cells[traffic_col]
        )
        if not share:
            continue
        name_col = next(
            (i for i, h in enumerate(columns) if re.search(r"stage|phase|step|name|wave", h)), 0
        )
        env_col = next((i for i, h in enumerate(columns) if re.search(r"env", h)), None)
        soak_col = next(
            (i for i, h in enumerate(columns) if re.search(r"soak|duration|monitor|wait|bake", h)),
            None,
        )
        cell = block.cells[soak_col] if soak_col is not None and soak_col < len(block.cells) else ""
        soak = _soak("soak " + cell, block.line, []) if cell else None
        if soak is None and cell:
            soak = duration_seconds(plain(cell))
        environment = _environment(block.cells[env_col]) if env_col is not None else ""
        if env_col is not None and not environment:
            environment = plain(block.cells[env_col]).lower()
        found.append(
            _Stage(
                name=_name(block.cells[name_col]),
                line=block.line,
                quote=block.text,
                traffic=float(share.group(1) if share.lastindex else share.group(0)),
                environment=environment,
                soak=soak,
            )
        )
    return found


def _unit_stages(
    heading: Heading, own: list[Block], has_stage_children: bool, notes: list[str]
) -> list[_Stage]:
    explicit = _yaml_stages(own, notes) or _table_stages(own)
    if explicit:
        return explicit
    prose = [b for b in own if b.kind in ("item", "para") and b.task is None]
    shared_soak = next(
        (
            soak
            for b in prose
            if b.kind == "para" or b.depth == 1
            for soak in [_soak(b.text, b.line, []) if re.search(r"each|every", b.text) else None]
            if soak is not None
        ),
        None,
    )
    if shared_soak is not None:
        soak_block = next(
            b for b in prose if re.search(r"each|every", b.text) and _soak(b.text, b.line, [])
        )
        _soak(soak_block.text, soak_block.line, notes)

    carrying = [(b, traffic_shares(b.text)) for b in prose]
    carrying = [(b, shares) for b, shares in carrying if shares]
    stages: list[_Stage] = []
    if len(carrying) >= 2 or any(len(shares) >= 2 for _, shares in carrying):
        for block, shares in carrying:
            start, end = _days(block.text)
            for share in shares:
                name = _name(block.text) if len(shares) == 1 else f"{share:g}%"
                stages.append(
                    _Stage(
                        name=name,
                        line=block.line,
                        quote=plain(block.text),
                        traffic=share,
                        environment=_environment(block.text),
                        soak=_soak(block.text, block.line, notes),
                        start_day=start,
                        end_day=end,
                    )
                )
        for stage in stages:
            # The shared soak ("24-48 hours at each level") is for the levels, not for a stage
            # the day schedule already bounds ("Day 1-3").
            if stage.soak is None and stage.start_day is None:
                stage.soak = shared_soak
        return stages

    shares = {share for _, found in carrying for share in found}
    for block in own:
        if block.kind == "code":
            for match in _CONFIG.finditer(block.text):
                shares.add(float(match.group(2)))
    shares |= set(traffic_shares(heading.name))
    if len(shares) > 1:
        notes.append(
            f"line {heading.line}: {heading.name!r} names several traffic shares "
            f"({', '.join(f'{s:g}%' for s in sorted(shares))}); the first is kept."
        )
    if not shares and not (_STAGE_HEAD.match(heading.name) and not has_stage_children):
        return []
    traffic = sorted(shares)[0] if shares else 0.0
    text = " ".join([heading.name, *(plain(b.text) for b in prose)])
    soak = _soak(heading.name, heading.line, notes)
    if soak is None:
        soak = next(
            (s for b in prose for s in [_soak(b.text, b.line, notes)] if s is not None), None
        )
    start, end = _days(heading.name)
    return [
        _Stage(
            name=_heading_name(heading),
            line=heading.line,
            quote=heading.name,
            traffic=traffic,
            environment=_environment(heading.name, text),
            soak=soak,
            start_day=start,
            end_day=end,
        )
    ]


def _finish(stages: list[_Stage], notes: list[str]) -> list[StageDraft]:
    """Soaks from the day schedule, environments filled in, repeated stages merged."""
    for index, stage in enumerate(stages):
        if stage.soak is None and stage.start_day is not None:
            # "Day 1-3" lasts three days, whatever gap the schedule leaves before the next stage;
            # a single day ("Day 8") lasts until the next stage starts.
            later = next(
                (s.start_day for s in stages[index + 1 :] if s.start_day is not None), None
            )
            if stage.end_day is not None:
                stage.soak = (stage.end_day - stage.start_day + 1) * 86400
            elif later is not None and later > stage.start_day:
                stage.soak = (later - stage.start_day) * 86400
    previous: _Stage | None = None
    for stage in stages:
        if not stage.environment:
            if stage.traffic > 0:
                keep = previous is not None and previous.traffic > 0 and previous.environment
                stage.environment = previous.environment if keep else "production"
            else:
                stage.environment = previous.environment if previous else "staging"
        previous = stage
    merged: list[_Stage] = []
    for stage in stages:
        last = merged[-1] if merged else None
        if last and last.traffic == stage.traffic and last.environment == stage.environment:
            last.soak = max(last.soak or 0, stage.soak or 0)
            continue
        merged.append(stage)
    drafts = []
    for stage in merged:
        traffic = int(round(stage.traffic))
        if traffic != stage.traffic:
            notes.append(f"line {stage.line}: {stage.traffic:g}% is rounded to {traffic}%.")
        drafts.append(
            StageDraft(
                name=stage.name or f"{traffic}%",
                environment=stage.environment,
                traffic_percentage=max(0, min(100, traffic)),
                min_soak_seconds=stage.soak or 0,
                line=stage.line,
                quote=stage.quote,
            )
        )
    return drafts

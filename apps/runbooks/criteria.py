"""Metric criteria from the runbook: thresholds in prose, lists and tables, Prometheus alert
rules in YAML, and SQL monitoring queries.

A criterion's operator is the bad side, as a MetricCriterion's comparator: "error rate > 2 %"
under "Automatic rollback triggers" is `>` 2; a good side ("Error rate <3%" under "Success
criteria", "Cache hit rate (target: >70%)") is turned into its breach (`>=` 3, `<=` 70). The
headings, labels and the sentence that introduces a list decide what a breach does: roll back
("rollback triggers"), pause ("NO-GO if", success criteria, critical alerts) or notify (targets,
warnings). Task boxes are checklist items, never criteria; troubleshooting symptoms are neither.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from .draft import CriterionDraft
from .markdown import Block, plain
from .quantities import duration_seconds, load_yaml, unit_seconds

_SKIP = re.compile(r"troubleshoot|common issues|symptoms|solutions|faq|known issues", re.I)
_NUM = r"-?\d+(?:\.\d+)?"
_UNIT = (
    r"%|ms\b|milliseconds?\b|s\b|secs?\b|seconds?\b|minutes?\b|mins?\b|m\b|hours?\b|hrs?\b"
    r"|h\b|days?\b|req/s\b|rps\b"
)
_OP = r"<=|>=|=<|=>|≤|≥|<|>"
_LABELLED = re.compile(
    r"^(?P<metric>[^()]{2,60}?)\s*\((?P<kind>targets?|alerts?|thresholds?|slos?|goals?|limits?)"
    r"\s*:\s*(?P<op>" + _OP + r")\s*(?P<num>" + _NUM + r")\s*(?P<unit>" + _UNIT + r")?",
    re.I,
)
_SYMBOL = re.compile(
    r"(?P<metric>[A-Za-z][\w /.-]{1,60}?)\s*:?\s*(?P<op>" + _OP + r")\s*(?P<num>" + _NUM + r")"
    r"\s*(?P<unit>" + _UNIT + r")?",
    re.I,
)
_WORDS = {
    ">": r"exceeds?|exceeding|goes above|rises above|is above|above|over|greater than|more than"
    r"|higher than|spikes? above|increases? (?:above|beyond)",
    "<": r"drops? below|dropping below|falls? below|is below|below|under|less than|lower than"
    r"|decreases? below",
    ">=": r"at least|no less than|not below|not under",
    "<=": r"at most|no more than|not exceed|does not exceed|not above|within",
}
_WORDED = re.compile(
    r"(?P<metric>[A-Za-z][\w /.-]{1,60}?)\s+(?P<word>"
    + "|".join(_WORDS.values())
    + r")\s+(?P<num>"
    + _NUM
    + r")\s*(?P<unit>"
    + _UNIT
    + r")?",
    re.I,
)
_NUMBER_FIRST = re.compile(
    r"(?P<num>" + _NUM + r")\s*(?P<unit>%)\s+(?P<metric>[a-z][a-z ]{2,30}?)\s+"
    r"(?:maintained|achieved|or (?:better|higher|more))",
    re.I,
)
_ZERO = re.compile(r"\bzero\s+(?P<metric>[a-z][\w-]*(?:\s+[a-z][\w-]*){0,3})", re.I)
_P_VALUE = re.compile(r"\bp(?:[- ]value)?\s*(?P<op><=|<|≤)\s*(?P<num>0?\.\d+)", re.I)
_FOR = re.compile(
    r"\bfor\s+(?:more than\s+|at least\s+)?(?P<num>\d+(?:\.\d+)?)\s*(?:consecutive\s+)?"
    r"(?P<unit>seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)\b",
    re.I,
)
_LEAD = re.compile(
    r"^(?:.*\b(?:if|when|whenever|while|unless)\s+)?(?:the\s+|an?\s+|any\s+|overall\s+)?"
    r"(?:(?:high|moderate|low|elevated|excessive|critical|warning|average|avg|mean)\s+)*",
    re.I,
)
_TRAIL = re.compile(
    r"\s+(?:is|are|stays?|remains?|must be|should be|goes|rises|of|degradation|drops?)$", re.I
)
_DIGIT = re.compile(r"\d")
_NEGATE = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}
_SYMBOLS = {"=<": "<=", "=>": ">=", "≤": "<=", "≥": ">="}

_GOOD = re.compile(
    r"success|targets?\b|goals?\b|\bslos?\b|expected|exit criteria|acceptance|go\s*/\s*no[- ]?go"
    r"|healthy|must\b|criteria|check[\s-]?list",
    re.I,
)
_BREACH = re.compile(
    r"roll[- ]?back|revert|no[- ]?go\b|abort|halt|pause|alerts?\b|triggers?|breach|page|disable",
    re.I,
)
_ROLLBACK = re.compile(r"roll[- ]?back|revert|automatically disable|disable .* if", re.I)
_PAUSE = re.compile(r"(?<!/)no[- ]?go\b|\bpause|\bhalt|\babort|\bstop\b|freeze", re.I)
_STEP_BACK = re.compile(r"step (traffic )?back|reduce traffic|scale back", re.I)
_CRITICAL = re.compile(r"\bcritical\b|\bsev ?1\b|\bp1\b|\bpage\b|immediate", re.I)
_WARNING = re.compile(r"\bwarn(ing)?s?\b|investigate|\bsev ?[23]\b|\bmonitor", re.I)
_GATE = re.compile(r"success criteria|exit criteria|acceptance|go\s*/\s*no[- ]?go", re.I)


@dataclass(frozen=True)  # shared: judge() answers from a cache
class _Judgement:
    good: bool
    action: str
    severity: str


def judge(contexts: list[str]) -> _Judgement:
    """What the headings and labels around a threshold say: good side or breach, and the action."""
    # Every threshold under the same headings gets the same answer: judged once per heading set.
    return _judge(tuple(contexts))


@functools.lru_cache(maxsize=1024)
def _judge(contexts: tuple[str, ...]) -> _Judgement:
    good: bool | None = None
    for name in contexts:
        if re.search(r"go\s*/\s*no[- ]?go", name, re.I) or (
            _GOOD.search(name) and not _BREACH.search(name)
        ):
            good = True
            break
        if _BREACH.search(name):
            good = False
            break
    for name in contexts:
        if _ROLLBACK.search(name):
            return _Judgement(bool(good), "rollback", "critical")
        if _STEP_BACK.search(name):
            return _Judgement(bool(good), "step_back", "critical")
        if _PAUSE.search(name) or _GATE.search(name):
            return _Judgement(bool(good), "pause", "critical")
        if _CRITICAL.search(name):
            return _Judgement(bool(good), "pause", "critical")
        if _WARNING.search(name):
            return _Judgement(bool(good), "notify", "warning")
    return _Judgement(bool(good), "notify", "warning")


def metric_key(phrase: str) -> str:
    """A metric key from the words naming it: "P95 latency" -> "p95_latency"."""
    text = re.sub(r"\([^)]*\)", " ", phrase)
    text = _LEAD.sub("", text.strip())
    text = _TRAIL.sub("", text.strip(" :-–—"))
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:80]


def _value(number: str, unit: str | None) -> tuple[float, str]:
    value = float(number)
    unit = (unit or "").strip().lower()
    if not unit:
        return value, ""
    if unit == "%":
        return value, "%"
    if unit in ("req/s", "rps"):
        return value, "req/s"
    return round(value * unit_seconds(unit), 6), "s"


def _for_seconds(text: str) -> int:
    match = _FOR.search(text)
    return int(float(match.group("num")) * unit_seconds(match.group("unit"))) if match else 0


def parse_line(text: str, judgement: _Judgement) -> list[tuple[str, str, float, str, int, bool]]:
    """(metric, bad-side operator, threshold, unit, for_seconds, significance) of each clause."""
    line = plain(text)
    found: list[tuple[str, str, float, str, int, bool]] = []
    # A threshold needs a number (or "zero"): most prose lines stop here, before the patterns
    # whose backtracking is the parse's cost.
    if not _DIGIT.search(line) and "zero" not in line.lower():
        return []
    for clause in re.split(r";|,\s+(?=[a-z])|\s+(?:or|and)\s+(?=[a-z][\w ]*\s*(?:[<>≤≥]))", line):
        if not _DIGIT.search(clause) and "zero" not in clause.lower():
            continue
        match = _LABELLED.search(clause)
        if match:
            good = match.group("kind").lower().startswith(("target", "slo", "goal"))
            found.append(_make(match, clause, good, judgement))
            continue
        p_value = _P_VALUE.search(clause)
        if p_value:
            before = clause[: p_value.start()]
            subject = re.search(r"(?:in|of|on|for)\s+([a-z][\w ]{2,40}?)\s*\(?\s*$", before, re.I)
            # "Click-through improvement significant at p < 0.05": the words before "significant".
            named = re.match(
                r"^\W*(?P<s>[a-z][\w -]{2,60}?)\s+(?:is\s+)?(?:statistically\s+)?"
                r"significan",
                before,
                re.I,
            )
            metric = metric_key((subject or named).group(1)) if (subject or named) else ""
            metric = metric or "significance"
            op = _SYMBOLS.get(p_value.group("op"), p_value.group("op"))
            found.append((metric, op, float(p_value.group("num")), "p", 0, True))
            continue
        match = _SYMBOL.search(clause) or None
        worded = _WORDED.search(clause)
        if worded and (match is None or worded.start() <= match.start()):
            op = next(o for o, words in _WORDS.items() if re.fullmatch(words, worded["word"], re.I))
            found.append(_make(worded, clause, judgement.good, judgement, op=op))
            continue
        if match:
            found.append(_make(match, clause, judgement.good, judgement))
            continue
        first = _NUMBER_FIRST.search(clause)
        if first:
            value, unit = _value(first.group("num"), first.group("unit"))
            found.append((metric_key(first.group("metric")), "<", value, unit, 0, False))
            continue
        zero = _ZERO.search(clause)
        if zero:
            found.append((metric_key(zero.group("metric")), ">", 0.0, "", 0, False))
    return [f for f in found if f[0] and re.search(r"[a-z]", f[0])]


def _make(
    match: re.Match[str], clause: str, good: bool, judgement: _Judgement, op: str | None = None
) -> tuple[str, str, float, str, int, bool]:
    operator = op or _SYMBOLS.get(match.group("op"), match.group("op"))
    if good:
        operator = _NEGATE[operator]
    value, unit = _value(match.group("num"), match.group("unit"))
    return metric_key(match.group("metric")), operator, value, unit, _for_seconds(clause), False


def _skipped(block: Block) -> bool:
    if block.kind == "para" and re.match(r"^\W*symptoms?\b", plain(block.text), re.I):
        return True
    return any(_SKIP.search(name) for name in block.context())


def extract(blocks: list[Block], notes: list[str]) -> list[CriterionDraft]:
    """Every criterion, in the runbook's order."""
    found: list[CriterionDraft] = []
    intro: dict[int, str] = {}  # the sentence introducing the list under a heading
    for block in blocks:
        heading_line = block.heading.line if block.heading else 0
        if block.kind == "para":
            intro[heading_line] = plain(block.text)
        if block.kind == "heading" or _skipped(block):
            continue
        if block.kind == "item" and (block.task is not None or not block.text):
            continue
        if block.kind == "item" and block.label and block.children:
            continue
        contexts = block.context()
        if block.kind == "item" and block.parent is None and heading_line in intro:
            contexts = [intro[heading_line], *contexts]
        if block.kind == "code":
            found.extend(_from_code(block, contexts, notes))
            continue
        if block.kind == "row":
            found.extend(_from_row(block, contexts))
            continue
        judgement = judge(contexts)
        for metric, op, value, unit, seconds, _significance in parse_line(block.text, judgement):
            found.append(_criterion(block, metric, op, value, unit, seconds, judgement))
    _attach_sql(found, notes)
    return _unique(found)


def _criterion(
    block: Block,
    metric: str,
    op: str,
    value: float | None,
    unit: str,
    seconds: int,
    judgement: _Judgement,
    *,
    line: int | None = None,
    quote: str | None = None,
    kind: str = "push",
    query: str = "",
) -> CriterionDraft:
    return CriterionDraft(
        metric=metric,
        operator=op,
        threshold=value,
        unit=unit,
        for_seconds=seconds,
        action=judgement.action,
        severity=judgement.severity,
        source_kind=kind,
        query=query,
        line=line or block.line,
        quote=quote if quote is not None else plain(block.text)[:300],
    )


def _from_row(block: Block, contexts: list[str]) -> list[CriterionDraft]:
    columns = [h.lower() for h in block.header]
    if not any(re.search(r"metric|signal|indicator|sli", h) for h in columns):
        text = block.text
        judgement = judge(contexts)
        return [_criterion(block, *parsed[:5], judgement) for parsed in parse_line(text, judgement)]
    cells = dict(zip(columns, block.cells, strict=False))
    metric = next((v for k, v in cells.items() if re.search(r"metric|signal|indicator|sli", k)), "")
    action = next((v for k, v in cells.items() if re.search(r"action|response|then", k)), "")
    severity = next((v for k, v in cells.items() if re.search(r"severity|level|priority", k)), "")
    window = next((v for k, v in cells.items() if re.search(r"\bfor\b|window|duration", k)), "")
    judgement = judge([action, severity, *contexts])
    found = []
    for key, cell in cells.items():
        if not re.search(r"threshold|limit|trigger|breach|warn|critical|condition|target", key):
            continue
        if re.search(r"warn", key):
            judgement = _Judgement(judgement.good, "notify", "warning")
        elif re.search(r"critical|rollback", key):
            # The row's own action ("roll back") decides before the column's name ("Critical").
            judgement = judge([action, key, "critical"])
        good = bool(re.search(r"target|goal|slo", key))
        for _metric, op, value, unit, seconds, _sig in parse_line(
            f"{metric} {cell}", _Judgement(good, judgement.action, judgement.severity)
        ):
            seconds = seconds or (duration_seconds(plain(window)) or 0)
            found.append(_criterion(block, metric_key(metric), op, value, unit, seconds, judgement))
    return found


_PROM_COMPARE = re.compile(
    r"^(?P<query>.*?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<num>" + _NUM + r")\s*$"
)


def _from_code(block: Block, contexts: list[str], notes: list[str]) -> list[CriterionDraft]:
    if block.lang in ("yaml", "yml", ""):
        data = load_yaml(block.text)
        rules = list(_alert_rules(data)) if data is not None else []
        if rules:
            return [_from_alert(block, rule, contexts, notes) for rule in rules]
        if block.lang in ("yaml", "yml"):
            return _from_yaml_prose(block, contexts)
    if block.lang == "sql" or re.match(r"^\s*(select|with)\b", block.text, re.I):
        return _from_sql(block, contexts, notes)
    return []


def _alert_rules(data: Any) -> Any:
    if isinstance(data, dict):
        if "expr" in data and "alert" in data:
            yield data
            return
        for value in data.values():
            yield from _alert_rules(value)
    elif isinstance(data, list):
        for value in data:
            yield from _alert_rules(value)


def _from_alert(
    block: Block, rule: dict[str, Any], contexts: list[str], notes: list[str]
) -> CriterionDraft:
    line = block.line + int(rule.get("__line__", 0))
    expr = " ".join(str(rule["expr"]).split())
    compare = _PROM_COMPARE.match(expr)
    labels = rule.get("labels") if isinstance(rule.get("labels"), dict) else {}
    severity = str(labels.get("severity", "")).lower()
    severity = "critical" if severity in ("critical", "page", "sev1", "p1") else "warning"
    judgement = judge(contexts)
    action = judgement.action if judgement.action in ("rollback", "step_back") else ""
    action = action or ("pause" if severity == "critical" else "notify")
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(rule["alert"]))
    if compare:
        query, op, value = compare["query"], compare["op"], float(compare["num"])
        if op in ("==", "!="):
            notes.append(f"line {line}: alert {rule['alert']} compares with {op}; check it.")
            op = ">"
    else:
        query, op, value = expr, ">", None
        notes.append(
            f"line {line}: alert {rule['alert']} has no threshold in its expression; give one."
        )
    return CriterionDraft(
        metric=metric_key(name),
        operator=op,
        threshold=value,
        unit="",
        for_seconds=duration_seconds(rule.get("for")) or 0,
        action=action,
        severity=severity,
        source_kind="prometheus",
        query=query,
        line=line,
        quote=f"alert: {rule['alert']} expr: {expr}",
    )


def _from_yaml_prose(block: Block, contexts: list[str]) -> list[CriterionDraft]:
    """A ```yaml block that is really a list of sentences, under comment headings."""
    found: list[CriterionDraft] = []
    heading = ""
    for offset, raw in enumerate(block.text.split("\n")):
        stripped = raw.strip()
        if stripped.startswith("#"):
            heading = stripped.lstrip("# ")
            continue
        if not stripped.startswith("- "):
            continue
        judgement = judge([heading, *contexts])
        for metric, op, value, unit, seconds, _sig in parse_line(stripped[2:], judgement):
            found.append(
                _criterion(
                    block,
                    metric,
                    op,
                    value,
                    unit,
                    seconds,
                    judgement,
                    line=block.line + offset,
                    quote=stripped[2:],
                )
            )
    return found


_SQL_METRIC = re.compile(r"--\s*metric\s*:\s*([\w.-]+)", re.I)
_SQL_THRESHOLD = re.compile(
    r"--\s*(?:alert|breach|fail|roll\s*back|rollback|page|warn|pause|no-go)\w*\b[^\n]*?"
    r"(?P<op>" + _OP + r")\s*(?P<num>" + _NUM + r")\s*(?P<unit>%)?",
    re.I,
)


def _from_sql(block: Block, contexts: list[str], notes: list[str]) -> list[CriterionDraft]:
    statements = [s for s in re.split(r";\s*", block.text) if s.strip()]
    code = [re.sub(r"--[^\n]*", "", s).strip() for s in statements]
    if not code or not all(re.match(r"^(select|with)\b", c, re.I) for c in code if c):
        return []
    if not any(
        re.search(r"monitor|metric|alert|quer|check|dashboard|health|sl[io]", c, re.I)
        for c in contexts
    ):
        return []
    named = _SQL_METRIC.search(block.text)
    aliases = re.findall(r"\bas\s+(\w+)", code[0], re.I)
    metric = (
        named.group(1)
        if named
        else next((a for a in reversed(aliases) if a.lower() not in ("at", "count", "n")), "")
    )
    metric = metric_key(metric or (contexts[0] if contexts else "sql_metric"))
    threshold = _SQL_THRESHOLD.search(block.text)
    judgement = judge([threshold.group(0) if threshold else "", *contexts])
    lowered = {a.lower() for a in aliases}
    missing = [c for c in ("at", "value") if c not in lowered]
    query = block.text.strip()
    note = (
        f"line {block.line}: the SQL query for {metric} is a draft: the SQL provider reads rows "
        "(at, value[, count]) between %(start)s and %(end)s for %(service)s/%(environment)s"
    )
    note += f"; name its columns {' and '.join(missing)}." if missing else "."
    notes.append(note)
    value, unit = (None, "")
    op = ">"
    if threshold:
        value, unit = _value(threshold.group("num"), threshold.group("unit"))
        op = _SYMBOLS.get(threshold.group("op"), threshold.group("op"))
    return [
        _criterion(
            block,
            metric,
            op,
            value,
            unit,
            0,
            judgement,
            quote=query.split("\n")[0][:300],
            kind="sql",
            query=query,
        )
    ]


def _attach_sql(found: list[CriterionDraft], notes: list[str]) -> None:
    """An SQL draft without a threshold takes the one a prose line gives the same metric."""
    for sql in [c for c in found if c.source_kind == "sql" and c.threshold is None]:
        prose = next((c for c in found if c.metric == sql.metric and c.source_kind == "push"), None)
        if prose is not None:
            prose.source_kind, prose.query = "sql", sql.query
            found.remove(sql)
        else:
            notes.append(f"line {sql.line}: give the SQL criterion for {sql.metric} a threshold.")


def _unique(found: list[CriterionDraft]) -> list[CriterionDraft]:
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for criterion in found:
        key = (criterion.metric, criterion.operator, criterion.threshold, criterion.line)
        if key not in seen:
            seen.add(key)
            unique.append(criterion)
    return unique

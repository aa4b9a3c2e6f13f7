"""The evaluator: pure functions from measurements and a rule to a level and a verdict.

No database, no clock: the tick, the backtest and the tests feed it the same way.

- Absolute criteria split their window into intervals; a breach counts only when every interval
  of the window breaches (Prometheus `for`). An interval without samples is a gap: inconclusive.
- Relative criteria compare the release (treatment) with the control or the baseline over the
  window, optionally requiring a one-sided significance test in the bad direction.
- History turns levels into verdicts: `consecutive` evaluations must breach in a row, and
  `inconclusive_limit` inconclusive ones in a row count as a warning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .choices import (
    BadDirection,
    Comparator,
    Level,
    MetricKind,
    Reference,
    SignificanceTest,
    TestMethod,
    Tolerance,
    Verdict,
)
from .sequential import MIN_VALUES, Difference, mean_difference, rate_difference, samples_needed
from .sequential import test as sequential_test


@dataclass(frozen=True)
class Point:
    """One measurement: when, what value, and how many requests behind it (rates)."""

    at: datetime
    value: float
    count: float | None = None


@dataclass(frozen=True)
class Stats:
    """Mergeable sums over some samples: enough for every kind's aggregate and the z-test."""

    n: int = 0
    total: float = 0.0
    weighted: float = 0.0  # sum of value * count over samples that have a count
    weight: float = 0.0  # sum of count
    squares: float = 0.0  # sum of value² (a mean's variance, for the sequential test)
    maximum: float | None = None
    minimum: float | None = None

    @classmethod
    def of(cls, points: Iterable[Point]) -> Stats:
        stats = cls()
        for p in points:
            stats = stats + cls(
                n=1,
                total=p.value,
                weighted=p.value * p.count if p.count is not None else 0.0,
                weight=p.count or 0.0,
                squares=p.value * p.value,
                maximum=p.value,
                minimum=p.value,
            )
        return stats

    def __add__(self, other: Stats) -> Stats:
        def pick(a: float | None, b: float | None, f: type[max] | type[min]) -> float | None:
            return b if a is None else a if b is None else f(a, b)

        return Stats(
            n=self.n + other.n,
            total=self.total + other.total,
            weighted=self.weighted + other.weighted,
            weight=self.weight + other.weight,
            squares=self.squares + other.squares,
            maximum=pick(self.maximum, other.maximum, max),
            minimum=pick(self.minimum, other.minimum, min),
        )

    def value(self, kind: str) -> float | None:
        """The window's value: weighted mean for ratios, mean for gauges, sum for counters."""
        if kind == MetricKind.COUNTER:
            return self.total
        if self.n == 0:
            return None
        if kind == MetricKind.RATIO and self.weight > 0:
            return self.weighted / self.weight
        return self.total / self.n


@dataclass(frozen=True)
class Rule:
    """What the evaluator needs of a criterion (MetricCriterion.rule() builds one)."""

    comparator: str = Comparator.GT
    warning: float | None = None
    critical: float | None = None
    kind: str = MetricKind.GAUGE
    bad_direction: str = BadDirection.HIGHER
    for_window: timedelta = timedelta(0)
    interval: timedelta = timedelta(minutes=1)
    min_samples: int = 1
    reference: str = Reference.ABSOLUTE
    tolerance: str = Tolerance.RELATIVE
    test: str = SignificanceTest.NONE
    alpha: float = 0.05
    consecutive: int = 1
    inconclusive_limit: int = 5
    method: str = TestMethod.FIXED
    minimum_effect: float | None = None  # in the tolerance's units (%, or metric units)
    success: bool = False

    @property
    def window(self) -> timedelta:
        return max(self.for_window, self.interval)

    @property
    def sequential(self) -> bool:
        """Judged by the always-valid test on everything since the stage began (a success
        criterion always is)."""
        if self.reference == Reference.ABSOLUTE:
            return False
        return self.success or (
            self.method == TestMethod.SEQUENTIAL and self.test != SignificanceTest.NONE
        )

    @property
    def effect(self) -> float | None:
        """The smallest difference worth acting on: the minimum effect, else the smallest
        positive threshold."""
        if self.minimum_effect is not None and self.minimum_effect > 0:
            return self.minimum_effect
        positive = [t for t in (self.warning, self.critical) if t is not None and t > 0]
        return min(positive) if positive else None

    @property
    def intervals(self) -> int:
        return max(1, int(self.window / self.interval))


@dataclass
class Evaluation:
    """One evaluation's measured level, before history."""

    level: str
    value: float | None = None
    samples: int = 0
    threshold: float | None = None
    reference_value: float | None = None
    delta: float | None = None
    p_value: float | None = None
    detail: str = ""
    more_needed: int | None = None  # sequential: samples more to decide on the minimum effect


@dataclass(frozen=True)
class Streaks:
    """Evaluations in a row that were critical, breaching (warning or worse), or without data."""

    critical: int = 0
    breach: int = 0
    nodata: int = 0


@dataclass
class Decision:
    """The verdict after history, and the streaks to store with it."""

    verdict: str
    streaks: Streaks
    note: str = ""
    extra: dict = field(default_factory=dict)


_COMPARE = {
    Comparator.GT: lambda v, t: v > t,
    Comparator.GTE: lambda v, t: v >= t,
    Comparator.LT: lambda v, t: v < t,
    Comparator.LTE: lambda v, t: v <= t,
}


def breach_level(value: float, rule: Rule) -> tuple[str, float | None]:
    """OK, WARNING or CRITICAL for one value, and the threshold it crossed."""
    compare = _COMPARE[rule.comparator]
    if rule.critical is not None and compare(value, rule.critical):
        return Level.CRITICAL, rule.critical
    if rule.warning is not None and compare(value, rule.warning):
        return Level.WARNING, rule.warning
    return Level.OK, None


def bucket_points(
    points: Iterable[Point], *, end: datetime, window: timedelta, interval: timedelta
) -> list[Stats]:
    """Split [end - window, end) into intervals (oldest first) and sum the points in each."""
    count = max(1, int(window / interval))
    start = end - interval * count
    buckets = [Stats()] * count
    for p in points:
        if start <= p.at < end:
            index = int((p.at - start) / interval)
            buckets[index] = buckets[index] + Stats.of([p])
    return buckets


def intervals_lived(since: datetime | None, now: datetime, rule: Rule) -> int | None:
    """How many of the window's newest intervals fall after `since` (the stage's entry); None
    when the whole window does."""
    if since is None:
        return None
    count = max(1, int(rule.window / rule.interval))
    lived = -(-(now - since) // rule.interval)  # intervals touched since `since`, rounded up
    return None if lived >= count else max(1, int(lived))


def evaluate_absolute(
    buckets: Sequence[Stats], rule: Rule, *, lived: int | None = None
) -> Evaluation:
    """Every interval of the window must breach for the window to breach; a gap is inconclusive.

    `lived`: a stage younger than the window has lived only its newest intervals. Empty ones
    before it are not gaps (there was nothing to measure yet), and a breach over the part lived
    can warn but not turn critical: like Prometheus' `for`, the window must be full before
    anything acts.
    """
    before = len(buckets) - lived if lived is not None else 0
    empty = 0
    while empty < before and buckets[empty].n == 0:
        empty += 1
    if empty:
        buckets = buckets[empty:]
    evaluation = _evaluate_buckets(buckets, rule)
    if empty and evaluation.level == Level.CRITICAL:
        lived_for = _human(rule.interval * len(buckets))
        return Evaluation(
            Level.WARNING,
            value=evaluation.value,
            samples=evaluation.samples,
            threshold=rule.critical,
            detail=f"Critical for the {lived_for} the stage has run; acts only once it holds "
            f"for the whole {_human(rule.window)}.",
        )
    return evaluation


def _evaluate_buckets(buckets: Sequence[Stats], rule: Rule) -> Evaluation:
    window = sum(buckets, Stats())
    value = window.value(rule.kind)
    if window.n < rule.min_samples:
        return Evaluation(
            Level.NO_DATA,
            value=value if window.n else None,
            samples=window.n,
            detail=f"{window.n} sample(s) in {_human(rule.window)}; needs {rule.min_samples}.",
        )
    levels = []
    for index, bucket in enumerate(buckets):
        bucket_value = bucket.value(rule.kind)
        if bucket_value is None:
            ago = rule.interval * (len(buckets) - index)
            return Evaluation(
                Level.NO_DATA,
                value=value,
                samples=window.n,
                detail=f"Gap in data: no samples in the interval starting {_human(ago)} ago.",
            )
        levels.append(breach_level(bucket_value, rule)[0])
    if all(level == Level.CRITICAL for level in levels):
        return Evaluation(
            Level.CRITICAL, value=value, samples=window.n, threshold=rule.critical, detail=""
        )
    if all(level != Level.OK for level in levels):
        return Evaluation(
            Level.WARNING, value=value, samples=window.n, threshold=rule.warning, detail=""
        )
    detail = ""
    breaching = 0
    for level in reversed(levels):
        if level == Level.OK:
            break
        breaching += 1
    if breaching:
        detail = (
            f"Breaching for the last {_human(rule.interval * breaching)} of "
            f"{_human(rule.window)}: not sustained yet."
        )
    return Evaluation(Level.OK, value=value, samples=window.n, detail=detail)


def worse_by(treatment: float, reference: float, rule: Rule) -> float:
    """How much worse the treatment is than the reference, in the criterion's tolerance."""
    difference = treatment - reference
    if rule.bad_direction == BadDirection.LOWER:
        difference = -difference
    if rule.tolerance == Tolerance.ABSOLUTE:
        return difference
    if reference == 0:
        return 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return difference / abs(reference) * 100


def proportions_p_value(treatment: Stats, reference: Stats, bad_direction: str) -> float | None:
    """One-sided two-proportion z-test: is the treatment's rate worse than the reference's?"""
    from scipy.stats import norm

    n1, n2 = treatment.weight, reference.weight
    if n1 <= 0 or n2 <= 0:
        return None
    x1, x2 = treatment.weighted, reference.weighted
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (p1 - p2) / se
    return float(norm.sf(z) if bad_direction == BadDirection.HIGHER else norm.cdf(z))


def mann_whitney_p_value(
    treatment: Sequence[float], reference: Sequence[float], bad_direction: str
) -> float | None:
    """One-sided Mann-Whitney U: are the treatment's values shifted to the bad side?"""
    from scipy.stats import mannwhitneyu

    if not treatment or not reference:
        return None
    if len(set(treatment) | set(reference)) == 1:
        return 1.0  # all values equal: no difference to find
    alternative = "greater" if bad_direction == BadDirection.HIGHER else "less"
    return float(mannwhitneyu(treatment, reference, alternative=alternative).pvalue)


def evaluate_relative(
    treatment: Stats,
    reference: Stats,
    rule: Rule,
    *,
    treatment_values: Sequence[float] = (),
    reference_values: Sequence[float] = (),
) -> Evaluation:
    """Compare the release with its reference; with a test, only a significant regression counts."""
    name = "control" if rule.reference == Reference.CONTROL else "baseline"
    if treatment.n < rule.min_samples or reference.n < rule.min_samples:
        return Evaluation(
            Level.NO_DATA,
            value=treatment.value(rule.kind) if treatment.n else None,
            reference_value=reference.value(rule.kind) if reference.n else None,
            samples=treatment.n,
            detail=(
                f"{treatment.n} treatment and {reference.n} {name} sample(s); "
                f"each needs {rule.min_samples}."
            ),
        )
    t_value, r_value = treatment.value(rule.kind), reference.value(rule.kind)
    delta = worse_by(t_value, r_value, rule)
    if rule.sequential:
        return evaluate_sequential(treatment, reference, rule, delta=delta)
    level, threshold = breach_level(delta, rule)
    p_value = None
    detail = ""
    if rule.test == SignificanceTest.PROPORTIONS:
        p_value = proportions_p_value(treatment, reference, rule.bad_direction)
        if p_value is None:
            return Evaluation(
                Level.NO_DATA,
                value=t_value,
                reference_value=r_value,
                delta=delta,
                samples=treatment.n,
                detail="The z-test needs request counts on both sides.",
            )
    elif rule.test == SignificanceTest.MANN_WHITNEY:
        p_value = mann_whitney_p_value(treatment_values, reference_values, rule.bad_direction)
    if p_value is not None and level != Level.OK and p_value >= rule.alpha:
        detail = f"Worse than {name}, but not significantly (p = {p_value:.3g} ≥ {rule.alpha:g})."
        level, threshold = Level.OK, None
    return Evaluation(
        level,
        value=t_value,
        reference_value=r_value,
        delta=delta,
        p_value=p_value,
        samples=treatment.n,
        threshold=threshold,
        detail=detail,
    )


def difference(treatment: Stats, reference: Stats, rule: Rule, sign: float) -> Difference | None:
    """The difference the sequential test reads: rates from counts, means from values."""
    if rule.kind == MetricKind.RATIO and treatment.weight > 0 and reference.weight > 0:
        return rate_difference(
            treatment.weighted, treatment.weight, reference.weighted, reference.weight, sign
        )
    if min(treatment.n, reference.n) < MIN_VALUES:
        return None
    return mean_difference(
        treatment.n,
        treatment.total,
        treatment.squares,
        reference.n,
        reference.total,
        reference.squares,
        sign,
    )


def effect_in_units(rule: Rule, base: float) -> float | None:
    """The rule's minimum effect in metric units (a relative one is a share of the reference);
    without one, 10 % of the reference."""
    effect = rule.effect
    if rule.tolerance == Tolerance.ABSOLUTE and effect is not None:
        return effect
    share = (effect if effect is not None else 10.0) / 100
    return share * base if base > 0 else None


def evaluate_sequential(
    treatment: Stats, reference: Stats, rule: Rule, *, delta: float
) -> Evaluation:
    """The always-valid one-sided test on everything since the stage began.

    A guardrail breaches when the release is significantly worse (at alpha, however often this
    is looked at) and worse by at least the minimum effect; the thresholds then give the level.
    A success criterion passes when it is significantly better by at least the minimum effect,
    and is PENDING until then. `more_needed` is the power figure: for a guardrail, the samples
    a regression of exactly the minimum effect would need from here to be caught; for a success
    criterion, the samples today's improvement (at least the minimum effect) needs to be proven.
    """
    name = "control" if rule.reference == Reference.CONTROL else "baseline"
    t_value, r_value = treatment.value(rule.kind), reference.value(rule.kind)
    bad = 1.0 if rule.bad_direction == BadDirection.HIGHER else -1.0
    sign = -bad if rule.success else bad
    diff = difference(treatment, reference, rule, sign)
    samples = int(treatment.weight) if rule.kind == MetricKind.RATIO else treatment.n
    common = {"value": t_value, "reference_value": r_value, "delta": delta, "samples": samples}
    if diff is None:
        needs = (
            "request counts on both sides"
            if rule.kind == MetricKind.RATIO
            else f"{MIN_VALUES} values on each side"
        )
        level = Level.PENDING if rule.success else Level.NO_DATA
        return Evaluation(level, detail=f"The sequential test needs {needs}.", **common)
    unit_effect = effect_in_units(rule, diff.base)
    if unit_effect is None:
        # A relative effect of a reference at zero: no scale to test against yet.
        level = Level.PENDING if rule.success else Level.OK
        return Evaluation(level, detail=f"The {name} is at zero: nothing to compare yet.", **common)
    result = sequential_test(diff, tau=unit_effect, alpha=rule.alpha)
    large_enough = diff.estimate >= unit_effect
    effect_text = _effect_text(rule)
    if rule.success:
        if result.significant and large_enough:
            return Evaluation(
                Level.OK,
                p_value=result.p_value,
                more_needed=0,
                detail=f"Significantly better than {name} (p = {result.p_value:.3g}).",
                **common,
            )
        if result.significant:
            # Significant, but smaller than the minimum effect: more data will not change that.
            more = None
            what = f"significantly better, but by less than {effect_text}"
        else:
            more = samples_needed(
                diff, tau=unit_effect, alpha=rule.alpha, effect=max(unit_effect, diff.estimate)
            )
            what = "not yet significant"
        return Evaluation(
            Level.PENDING,
            p_value=result.p_value,
            more_needed=more,
            detail=f"{what.capitalize()}: {_count(samples, rule)}, p = {result.p_value:.3g}"
            + _more_text(more, rule),
            **common,
        )
    if result.significant and large_enough:
        level, threshold = breach_level(delta, rule)
        detail = (
            f"Significantly worse than {name} (p = {result.p_value:.3g}), but within the "
            "thresholds."
            if level == Level.OK
            else f"Significantly worse than {name} (always-valid p = {result.p_value:.3g})."
        )
        return Evaluation(
            level,
            p_value=result.p_value,
            threshold=threshold,
            detail=detail,
            more_needed=0,
            **common,
        )
    if result.significant:
        return Evaluation(
            Level.OK,
            p_value=result.p_value,
            more_needed=0,
            detail=f"Significantly worse than {name}, but by less than {effect_text}.",
            **common,
        )
    more = samples_needed(diff, tau=unit_effect, alpha=rule.alpha, effect=unit_effect)
    detail = f"Not significantly worse than {name} (always-valid p = {result.p_value:.3g})"
    if more:
        detail += f"; a regression of {effect_text} would need about {_count(more, rule)} more."
    elif more == 0:
        detail += f"; a regression of {effect_text} would have been seen by now."
    else:
        detail += "."
    return Evaluation(Level.OK, p_value=result.p_value, detail=detail, more_needed=more, **common)


def _effect_text(rule: Rule) -> str:
    effect = rule.effect
    if rule.tolerance == Tolerance.ABSOLUTE:
        return f"{effect:g}" if effect is not None else "10 %"
    return f"{effect if effect is not None else 10:g} %"


def _count(n: float | None, rule: Rule) -> str:
    noun = "request" if rule.kind == MetricKind.RATIO else "sample"
    n = int(n or 0)
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def _more_text(more: int | None, rule: Rule) -> str:
    if more is None:
        return ""
    return f", about {_count(more, rule)} more needed."


def next_streaks(previous: Streaks | None, level: str) -> Streaks:
    """The streaks after one more evaluation at `level`."""
    previous = previous or Streaks()
    return Streaks(
        critical=previous.critical + 1 if level == Level.CRITICAL else 0,
        breach=previous.breach + 1 if level in (Level.WARNING, Level.CRITICAL) else 0,
        nodata=previous.nodata + 1 if level in (Level.NO_DATA, Level.ERROR) else 0,
    )


def decide(level: str, previous: Streaks | None, rule: Rule) -> Decision:
    """Turn this evaluation's level and the streaks before it into a verdict."""
    streaks = next_streaks(previous, level)
    k = max(1, rule.consecutive)
    if level == Level.CRITICAL and streaks.critical >= k:
        return Decision(Verdict.FAIL, streaks)
    if level in (Level.WARNING, Level.CRITICAL) and streaks.breach >= k:
        return Decision(Verdict.WARN, streaks)
    if level in (Level.WARNING, Level.CRITICAL):
        return Decision(
            Verdict.PASS, streaks, note=f"Breach {streaks.breach} of {k} in a row: pending."
        )
    if level == Level.PENDING:
        # A success criterion waiting for significance: the gate holds it, nobody is warned.
        return Decision(Verdict.INCONCLUSIVE, streaks)
    if level in (Level.NO_DATA, Level.ERROR):
        if rule.inconclusive_limit and streaks.nodata >= rule.inconclusive_limit:
            return Decision(
                Verdict.WARN,
                streaks,
                note=f"Inconclusive {streaks.nodata} evaluations in a row.",
            )
        return Decision(Verdict.INCONCLUSIVE, streaks)
    return Decision(Verdict.PASS, streaks)


def evaluate_series(
    points: Iterable[Point], rule: Rule, *, now: datetime, previous: Streaks | None = None
) -> tuple[Evaluation, Decision]:
    """Evaluate an absolute rule on raw points ending at `now`: the shortest path for tests."""
    buckets = bucket_points(points, end=now, window=rule.window, interval=rule.interval)
    evaluation = evaluate_absolute(buckets, rule)
    return evaluation, decide(evaluation.level, previous, rule)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"

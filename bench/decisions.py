"""Benchmark: how often the metric checks act on a healthy release, and how fast on a bad one.

Not a test: it simulates rollouts and feeds them, minute by minute, to the product's own
evaluator (apps.checks.evaluator: evaluate_relative, then decide with the streaks, as the tick
does every minute), for the fixed-horizon test and for the sequential one side by side:

- a 48 h soak checked every minute (2,880 looks), traffic from 10 to 10,000 requests a minute
  (log-uniform per run, a daily swing of ±50 % and Poisson noise), split 50/50 between the
  release (treatment) and the control;
- an error rate (1 % in the control; the z-test when fixed) and a latency (lognormal requests,
  median 200 ms, one mean per minute and variant pushed; Mann-Whitney when fixed);
- the criterion as a release manager would write it: worse than control by > 10 % is critical
  and rolls back, alpha 0.05, the fixed test over a 10-minute window, minimum effect 10 %;
- A/A runs (no difference) and A/B runs with true regressions of 1.2×, 1.5× and 2×.

A false action is a rollback of an A/A run at any of its 2,880 looks. It prints each
scenario's rates and the median minutes to detection, and as its last line:
`A/A false action rate: fixed X%, sequential Y% (alpha Z%); 2x regression detected: W% in a
median of M minutes` (sequential, both metrics together).

    .venv/bin/python bench/decisions.py              # 100 A/A and 50 A/B runs per metric
    .venv/bin/python bench/decisions.py --runs 40 --seed 7

No database, no server: the evaluator is pure.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rolloutdesk.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from apps.checks import evaluator  # noqa: E402
from apps.checks.choices import (  # noqa: E402
    BadDirection,
    CriticalAction,
    MetricKind,
    Reference,
    SignificanceTest,
    TestMethod,
    Tolerance,
    Verdict,
)
from apps.checks.evaluator import Point, Rule, Stats  # noqa: E402
from apps.checks.models import MetricCriterion, MetricDefinition  # noqa: E402

SOAK_MINUTES = 48 * 60
WINDOW_MINUTES = 10
ALPHA = 0.05
ERROR_RATE = 0.01
LATENCY_MEDIAN = 0.200
LATENCY_SIGMA = 0.5
EFFECTS = (1.0, 1.2, 1.5, 2.0)
# Today's fixed-horizon test for each kind of metric.
TESTS = {
    MetricKind.RATIO: SignificanceTest.PROPORTIONS,
    MetricKind.GAUGE: SignificanceTest.MANN_WHITNEY,
}


def rule(kind: str, method: str) -> Rule:
    """The criterion as saved in the admin, through MetricCriterion.rule() like the tick."""
    metric = MetricDefinition(
        key="error_rate" if kind == MetricKind.RATIO else "latency",
        kind=kind,
        bad_direction=BadDirection.HIGHER,
    )
    criterion = MetricCriterion(
        metric=metric,
        comparator=">",
        critical_threshold=10.0,
        reference=Reference.CONTROL,
        tolerance=Tolerance.RELATIVE,
        significance_test=TESTS[kind],
        p_value=ALPHA,
        method=method,
        minimum_effect=10.0,
        for_window=timedelta(minutes=WINDOW_MINUTES),
        on_critical=CriticalAction.ROLLBACK,
    )
    return criterion.rule()


def traffic(rng: np.random.Generator) -> np.ndarray:
    """Requests a minute over the soak: a level from 10 to 10,000, a daily swing, noise."""
    level = math.exp(rng.uniform(math.log(10), math.log(10_000)))
    minutes = np.arange(SOAK_MINUTES)
    phase = rng.uniform(0, 2 * math.pi)
    mean = level * (1 + 0.5 * np.sin(2 * math.pi * minutes / 1440 + phase))
    return rng.poisson(mean)


@dataclass
class Watcher:
    """One method's view of one run: its rule, its streaks, when it first rolled back."""

    rule: Rule
    streaks: evaluator.Streaks | None = None
    acted_at: int | None = None


@dataclass
class Side:
    """Per-minute Stats of one variant, and the raw values the fixed Mann-Whitney reads."""

    minutes: deque = field(default_factory=lambda: deque(maxlen=WINDOW_MINUTES))
    values: deque = field(default_factory=lambda: deque(maxlen=WINDOW_MINUTES))
    total: Stats = field(default_factory=Stats)

    def add(self, stats: Stats, value: float | None) -> None:
        self.minutes.append(stats)
        self.values.append(value)
        self.total = self.total + stats

    def window(self) -> Stats:
        return sum(self.minutes, Stats())

    def window_values(self) -> list[float]:
        return [v for v in self.values if v is not None]


def minute_stats(kind: str, requests: int, effect: float, rng: np.random.Generator) -> tuple:
    """One minute of one variant as pushed samples: (Stats, the value or None)."""
    if requests <= 0:
        return Stats(), None
    if kind == MetricKind.RATIO:
        errors = rng.binomial(requests, min(1.0, ERROR_RATE * effect))
        value = errors / requests
        return Stats.of([Point(at=None, value=value, count=requests)]), None
    # The mean of `requests` lognormal latencies (normal approximation of the mean).
    mu = math.log(LATENCY_MEDIAN * effect)
    mean = math.exp(mu + LATENCY_SIGMA**2 / 2)
    sd = math.sqrt(math.exp(LATENCY_SIGMA**2) - 1) * mean
    value = max(0.0, rng.normal(mean, sd / math.sqrt(requests)))
    return Stats.of([Point(at=None, value=value)]), value


def simulate(kind: str, effect: float, rng: np.random.Generator) -> dict[str, int | None]:
    """One 48 h run; the minute each method first rolled back (None: never)."""
    watchers = {
        TestMethod.FIXED: Watcher(rule(kind, TestMethod.FIXED)),
        TestMethod.SEQUENTIAL: Watcher(rule(kind, TestMethod.SEQUENTIAL)),
    }
    per_minute = traffic(rng)
    treatment, control = Side(), Side()
    for minute, requests in enumerate(per_minute):
        to_treatment = rng.binomial(requests, 0.5)
        treatment.add(*minute_stats(kind, to_treatment, effect, rng))
        control.add(*minute_stats(kind, requests - to_treatment, 1.0, rng))
        for method, watcher in watchers.items():
            if watcher.acted_at is not None:
                continue
            if method == TestMethod.SEQUENTIAL:
                rule_ = watcher.rule
                evaluation = evaluator.evaluate_relative(treatment.total, control.total, rule_)
            else:
                evaluation = evaluator.evaluate_relative(
                    treatment.window(),
                    control.window(),
                    watcher.rule,
                    treatment_values=treatment.window_values(),
                    reference_values=control.window_values(),
                )
            decision = evaluator.decide(evaluation.level, watcher.streaks, watcher.rule)
            watcher.streaks = decision.streaks
            if decision.verdict == Verdict.FAIL:
                watcher.acted_at = minute + 1
        if all(w.acted_at is not None for w in watchers.values()):
            break
    return {method: w.acted_at for method, w in watchers.items()}


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def median_text(minutes: list[int]) -> str:
    return f"{statistics.median(minutes):.0f}" if minutes else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="A/B runs per scenario")
    parser.add_argument("--aa-runs", type=int, default=None, help="A/A runs (default 2× --runs)")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    aa_runs = args.aa_runs or 2 * args.runs
    rng = np.random.default_rng(args.seed)
    print(
        f"{SOAK_MINUTES // 60} h soak checked every minute; traffic 10 to 10,000 requests/min; "
        f"critical at > 10 % worse than control, minimum effect 10 %, alpha {ALPHA:g}; "
        f"fixed horizon over {WINDOW_MINUTES} min; {aa_runs} A/A and {args.runs} A/B runs "
        "per metric"
    )
    header = f"{'metric':<11}{'true':>6}  {'fixed: acted':>13} {'median min':>11}"
    header += f"  {'sequential: acted':>18} {'median min':>11}"
    print(header)
    started = time.perf_counter()
    acted: dict[tuple[str, float, str], list[int | None]] = {}
    for kind in (MetricKind.RATIO, MetricKind.GAUGE):
        for effect in EFFECTS:
            runs = aa_runs if effect == 1.0 else args.runs
            results = [simulate(kind, effect, rng) for _ in range(runs)]
            row = f"{'error rate' if kind == MetricKind.RATIO else 'latency':<11}"
            row += f"{'A/A' if effect == 1.0 else f'{effect:g}x':>6}"
            for method in (TestMethod.FIXED, TestMethod.SEQUENTIAL):
                minutes = [r[method] for r in results]
                acted[(kind, effect, method)] = minutes
                hits = [m for m in minutes if m is not None]
                width = 13 if method == TestMethod.FIXED else 18
                row += f"  {percent(len(hits), runs):>{width - 1}.1f}% {median_text(hits):>11}"
            print(row, flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")

    def pooled(effect: float, method: str) -> list[int | None]:
        return acted[(MetricKind.RATIO, effect, method)] + acted[(MetricKind.GAUGE, effect, method)]

    aa_fixed = pooled(1.0, TestMethod.FIXED)
    aa_seq = pooled(1.0, TestMethod.SEQUENTIAL)
    big = pooled(2.0, TestMethod.SEQUENTIAL)
    big_hits = [m for m in big if m is not None]
    fixed_rate = percent(sum(m is not None for m in aa_fixed), len(aa_fixed))
    seq_rate = percent(sum(m is not None for m in aa_seq), len(aa_seq))
    print(
        f"A/A false action rate: fixed {fixed_rate:.1f}%, sequential {seq_rate:.1f}% "
        f"(alpha {ALPHA * 100:g}%); 2x regression detected: "
        f"{percent(len(big_hits), len(big)):.1f}% in a median of {median_text(big_hits)} minutes"
    )


if __name__ == "__main__":
    main()

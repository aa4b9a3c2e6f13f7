"""The always-valid test: published reference values, the peeking problem it solves, the
minimum effect, and the "more samples needed" estimate of a success criterion."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from apps.checks import sequential
from apps.checks.choices import (
    BadDirection,
    Level,
    MetricKind,
    Reference,
    SignificanceTest,
)
from apps.checks.choices import (
    TestMethod as Method,
)
from apps.checks.evaluator import Point, Rule, Stats, evaluate_relative, proportions_p_value

# Reference values: Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric,
# nonasymptotic confidence sequences" (Annals of Statistics 49(2), 2021), normal mixtures,
# as computed by the authors' reference implementation in R and kept as the test vectors of
# their confseq package (test/uniform_boundaries_unittest.cpp): s = 10, v = 100, mixture tuned
# for v_opt = 100 at alpha_opt = 0.05.
V, V_OPT = 100.0, 100.0


def best_rho(v: float, alpha: float) -> float:
    """Howard et al.'s mixture precision tuned for intrinsic time v (their eq. for rho*)."""
    return v / (2 * math.log(1 / alpha) + math.log(1 + 2 * math.log(1 / alpha)))


def in_our_units(s: float, v: float, rho: float) -> tuple[float, float, float]:
    """Their (sum s, intrinsic time v, precision rho) as our (estimate, variance, tau)."""
    return s / v, 1 / v, 1 / math.sqrt(rho)


def test_two_sided_mixture_matches_the_reference_value():
    rho = best_rho(V_OPT, 0.05)
    assert rho == pytest.approx(12.60056, abs=1e-5)
    estimate, variance, tau = in_our_units(10, V, rho)

    assert sequential.log_two_sided_mixture_ratio(estimate, variance, tau) == pytest.approx(
        -0.6510052, abs=1e-6
    )


def test_one_sided_mixture_and_its_boundary_match_the_reference_values():
    # The one-sided mixture is tuned as the two-sided one at 2 alpha (confseq's best_rho).
    rho = best_rho(V_OPT, 0.10)
    estimate, variance, tau = in_our_units(10, V, rho)

    assert sequential.log_mixture_ratio(estimate, variance, tau) == pytest.approx(
        -0.06502391, abs=1e-6
    )
    # The boundary at v = 100, alpha = 0.05: 27.66071 in their units (a sum).
    boundary = sequential.threshold(variance, tau=tau, alpha=0.05)
    assert boundary * V == pytest.approx(27.66071, abs=1e-4)


def test_the_closed_form_is_the_half_normal_mixture_of_likelihood_ratios():
    estimate, variance, tau = 0.013, 0.0001, 0.02

    def integrand(theta: float) -> float:
        ratio = math.exp(theta * estimate / variance - theta**2 / (2 * variance))
        return ratio * 2 * norm.pdf(theta, scale=tau)

    numeric, _ = integrate.quad(integrand, 0, 20 * tau)
    assert sequential.log_mixture_ratio(estimate, variance, tau) == pytest.approx(
        math.log(numeric), rel=1e-7
    )


def test_the_z_test_matches_the_textbook_value():
    # 2,000 requests each, 120 vs 100 errors: pooled 5.5 %, z = 0.01 / 0.007211 = 1.3868,
    # one-sided p = 0.0828 (the two-proportion z-test of any statistics textbook).
    treatment = Stats(n=1, weighted=120, weight=2000)
    control = Stats(n=1, weighted=100, weight=2000)
    assert proportions_p_value(treatment, control, BadDirection.HIGHER) == pytest.approx(
        0.0828, abs=1e-4
    )


RATE_RULE = Rule(
    kind=MetricKind.RATIO,
    reference=Reference.CONTROL,
    test=SignificanceTest.PROPORTIONS,
    method=Method.SEQUENTIAL,
    critical=10.0,
    minimum_effect=10.0,
)
FIXED_RULE = Rule(**{**RATE_RULE.__dict__, "method": Method.FIXED})


def minute(rng: np.random.Generator, requests: int, rate: float) -> Stats:
    errors = rng.binomial(requests, rate)
    return Stats.of([Point(at=None, value=errors / requests, count=requests)])


def test_looking_every_minute_keeps_the_sequential_false_alarms_under_alpha():
    """A/A, 150 looks at growing data: the fixed z-test crosses p < 0.05 in far more than 5 %
    of the runs (the peeking problem); the always-valid test stays at or under alpha."""
    rng = np.random.default_rng(2026)
    runs, looks = 100, 150
    alarms = {Method.FIXED: 0, Method.SEQUENTIAL: 0}
    for _ in range(runs):
        treatment = control = Stats()
        fired = set()
        for _ in range(looks):
            treatment += minute(rng, 200, 0.05)
            control += minute(rng, 200, 0.05)
            for rule in (FIXED_RULE, RATE_RULE):
                if rule.method in fired:
                    continue
                # Thresholds at zero: only the test decides, as in the textbook setting.
                bare = Rule(**{**rule.__dict__, "critical": 0.0})
                if evaluate_relative(treatment, control, bare).level == Level.CRITICAL:
                    fired.add(rule.method)
        for method in fired:
            alarms[method] += 1
    assert alarms[Method.SEQUENTIAL] / runs <= 0.05
    assert alarms[Method.FIXED] / runs >= 0.15


def test_a_significant_but_negligible_regression_does_not_act():
    """3 % worse at huge traffic is significant, but under the 10 % minimum effect."""
    treatment = Stats(n=600, weighted=103_000, weight=10_000_000)
    control = Stats(n=600, weighted=100_000, weight=10_000_000)
    low_bar = Rule(**{**RATE_RULE.__dict__, "critical": 1.0})

    evaluation = evaluate_relative(treatment, control, low_bar)

    assert evaluation.level == Level.OK
    assert evaluation.detail == "Significantly worse than control, but by less than 10 %."
    worse = Stats(n=600, weighted=120_000, weight=10_000_000)
    assert evaluate_relative(worse, control, low_bar).level == Level.CRITICAL


def test_a_guardrail_says_how_much_traffic_its_minimum_effect_needs():
    rng = np.random.default_rng(3)
    treatment, control = minute(rng, 500, 0.01), minute(rng, 500, 0.01)

    evaluation = evaluate_relative(treatment, control, RATE_RULE)

    assert evaluation.level == Level.OK
    assert evaluation.more_needed > 10_000  # 10 % of 1 % is subtle: many requests
    assert f"would need about {evaluation.more_needed:,} requests more" in evaluation.detail


LATENCY_RULE = Rule(
    kind=MetricKind.GAUGE,
    reference=Reference.CONTROL,
    test=SignificanceTest.MANN_WHITNEY,
    method=Method.SEQUENTIAL,
    critical=10.0,
    minimum_effect=10.0,
)


def values(rng: np.random.Generator, mean: float, n: int) -> Stats:
    return Stats.of([Point(at=None, value=v) for v in rng.normal(mean, 0.05, n)])


def test_continuous_values_stay_quiet_on_a_a_and_catch_a_regression():
    rng = np.random.default_rng(11)
    false_alarms = 0
    for _ in range(100):
        treatment = control = Stats()
        for _ in range(60):
            treatment += values(rng, 0.2, 1)
            control += values(rng, 0.2, 1)
            if evaluate_relative(treatment, control, LATENCY_RULE).level == Level.CRITICAL:
                false_alarms += 1
                break
    assert false_alarms <= 5
    slow = values(rng, 0.3, 30)  # 1.5× the latency
    assert evaluate_relative(slow, values(rng, 0.2, 30), LATENCY_RULE).level == Level.CRITICAL


SUCCESS_RULE = Rule(
    kind=MetricKind.RATIO,
    bad_direction=BadDirection.HIGHER,
    reference=Reference.CONTROL,
    success=True,
    minimum_effect=20.0,
)


def test_an_inconclusive_success_criterion_waits_and_says_how_far_it_is():
    rng = np.random.default_rng(5)
    treatment = control = Stats()
    for _ in range(30):
        treatment += minute(rng, 100, 0.02)
        control += minute(rng, 100, 0.02)

    evaluation = evaluate_relative(treatment, control, SUCCESS_RULE)

    assert evaluation.level == Level.PENDING
    assert evaluation.detail.startswith("Not yet significant: 3,000 requests, p = ")
    assert evaluation.detail.endswith(f"about {evaluation.more_needed:,} requests more needed.")


def test_the_more_samples_needed_estimate_is_within_2x_of_what_was_needed():
    """A real improvement (errors 22 % down, the minimum effect 20 %), 100 requests a minute a
    side: after the first hour the evaluator estimates the requests still needed; from that same
    hour, 11 simulated continuations show how many it took. Each estimate is within 2× of the
    median actually needed."""
    base, better = 0.02, 0.02 * 0.78

    def run_minute(rng: np.random.Generator, t: Stats, c: Stats) -> tuple[Stats, Stats]:
        return t + minute(rng, 100, better), c + minute(rng, 100, base)

    ratios = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        treatment = control = Stats()
        for _ in range(60):
            treatment, control = run_minute(rng, treatment, control)
        estimate = evaluate_relative(treatment, control, SUCCESS_RULE)
        if estimate.level != Level.PENDING:
            continue
        needed = []
        for k in range(11):
            future = np.random.default_rng(1000 + k)
            t, c = treatment, control
            for _ in range(5000):
                t, c = run_minute(future, t, c)
                reached = evaluate_relative(t, c, SUCCESS_RULE)
                if reached.level == Level.OK:
                    break
            needed.append(reached.samples - estimate.samples)
        ratios.append(estimate.more_needed / statistics.median(needed))
    assert len(ratios) >= 4
    assert all(0.5 <= r <= 2 for r in ratios), ratios

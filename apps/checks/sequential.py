"""Always-valid one-sided tests: a relative criterion may be checked every minute without its
false-alarm rate growing past alpha.

The test is the mixture sequential probability ratio test (mSPRT) of Robbins (1970) as used for
A/B tests by Johari, Koomen, Pekelis and Walsh ("Always valid inference: continuous monitoring
of A/B tests", Operations Research 70(3), 2022), with a half-normal mixture so that it is
one-sided (it looks only in the criterion's bad direction, or the good one for a success
criterion). Given the estimated difference `estimate` (treatment minus reference, on the side
tested) with variance `variance`, and a mixture of alternatives of scale `tau` (the criterion's
minimum effect), the mixture likelihood ratio is

    L = 2 · sqrt(V / (V + τ²)) · exp(z² / 2) · Φ(z),   z = estimate · τ / sqrt(V (V + τ²))

Under "no difference" L is a nonnegative supermartingale with mean at most 1, so by Ville's
inequality the chance it ever reaches 1/alpha, however often it is looked at, is at most alpha.
The always-valid p-value is min(1, 1/L). The variance is estimated (a normal approximation, as
Johari et al.), which is why rates use the pooled rate and means wait for `MIN_VALUES` samples.

Pure functions, no Django: the evaluator, the bench and the tests call them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import log_ndtr

# The variance of a mean is estimated from the samples; with very few of them the estimate can
# be far too small and the test overconfident, so a mean is tested from this many per side on.
MIN_VALUES = 10
# The largest number of samples an estimate looks ahead to (beyond it: "not reachable").
HORIZON = 10**12


def log_mixture_ratio(estimate: float, variance: float, tau: float) -> float:
    """log L of the one-sided (half-normal) mixture SPRT for a difference `estimate` ≥ 0."""
    if variance <= 0:
        # No noise at all: any positive difference is certain, none is no evidence.
        return math.inf if estimate > 0 else 0.0
    tau2 = tau * tau
    if tau2 <= 0:
        return 0.0
    total = variance + tau2
    z = estimate * tau / math.sqrt(variance * total)
    return math.log(2.0) + 0.5 * math.log(variance / total) + z * z / 2 + float(log_ndtr(z))


def log_two_sided_mixture_ratio(estimate: float, variance: float, tau: float) -> float:
    """log L of Robbins' two-sided normal mixture (the closed form the one-sided one extends)."""
    tau2 = tau * tau
    total = variance + tau2
    return 0.5 * math.log(variance / total) + estimate**2 * tau2 / (2 * variance * total)


def p_value(log_ratio: float) -> float:
    """The always-valid p-value of one look: min(1, 1/L)."""
    if log_ratio <= 0:
        return 1.0
    return math.exp(-log_ratio) if log_ratio < 745 else 0.0


@dataclass(frozen=True)
class Difference:
    """A difference on the side tested, its variance, and what one more sample adds to it.

    `unit_variance` is the variance of the difference times the treatment's sample count: with
    the traffic split kept, the variance after n treatment samples is unit_variance / n.
    """

    estimate: float
    variance: float
    unit_variance: float
    samples: float  # the treatment's samples (requests for a rate, values for a mean)
    base: float  # the reference level, to turn a relative minimum effect into metric units


def rate_difference(
    errors: float, requests: float, ref_errors: float, ref_requests: float, sign: float
) -> Difference | None:
    """Two rates (errors per request), with the pooled variance "no difference" implies.

    Pooled, not each side's own: early, a side with no error yet would have no variance and
    the first error on the other side would look certain.
    """
    if requests <= 0 or ref_requests <= 0:
        return None
    rate, ref_rate = errors / requests, ref_errors / ref_requests
    pooled = (errors + ref_errors) / (requests + ref_requests)
    spread = pooled * (1 - pooled)
    variance = spread * (1 / requests + 1 / ref_requests)
    return Difference(
        estimate=sign * (rate - ref_rate),
        variance=variance,
        unit_variance=spread * (1 + requests / ref_requests),
        samples=requests,
        # A relative minimum effect is a share of the reference's rate (the pooled one while the
        # reference has no error yet, so that the first errors have a scale).
        base=ref_rate if ref_rate > 0 else pooled,
    )


def mean_difference(
    n: int,
    total: float,
    squares: float,
    ref_n: int,
    ref_total: float,
    ref_squares: float,
    sign: float,
) -> Difference | None:
    """Two means (latency, scores) from counts, sums and sums of squares (Welch's variance)."""
    if n < 2 or ref_n < 2:
        return None
    mean, ref_mean = total / n, ref_total / ref_n
    var = max(0.0, (squares - n * mean * mean) / (n - 1))
    ref_var = max(0.0, (ref_squares - ref_n * ref_mean * ref_mean) / (ref_n - 1))
    return Difference(
        estimate=sign * (mean - ref_mean),
        variance=var / n + ref_var / ref_n,
        unit_variance=var + ref_var * n / ref_n,
        samples=n,
        base=abs(ref_mean),
    )


@dataclass(frozen=True)
class Test:
    """One look of the always-valid test: the evidence, and how far the decision still is."""

    log_ratio: float
    p_value: float
    significant: bool


def test(difference: Difference, *, tau: float, alpha: float) -> Test:
    """Is the difference significantly above zero at `alpha`, however often this is asked?"""
    log_ratio = log_mixture_ratio(difference.estimate, difference.variance, tau)
    return Test(log_ratio, p_value(log_ratio), log_ratio >= math.log(1 / alpha))


def _log_phi(z: float) -> float:
    return float(log_ndtr(z))


def _z_boundary(level: float) -> float:
    """The z at which z²/2 + log Φ(z) reaches `level` (increasing in z: Newton, then safe)."""
    z = math.sqrt(2 * level) if level > 0 else 0.0
    for _ in range(50):
        phi_ratio = math.exp(-z * z / 2 - 0.5 * math.log(2 * math.pi) - _log_phi(z))
        step = (z * z / 2 + _log_phi(z) - level) / (z + phi_ratio)
        z -= step
        if abs(step) < 1e-12:
            break
    return z


def threshold(variance: float, *, tau: float, alpha: float) -> float:
    """The smallest difference significant at `alpha` with this variance: the one-sided
    boundary of the confidence sequence (Howard et al. 2021's normal mixture, in its units)."""
    if variance <= 0:
        return 0.0
    total = variance + tau * tau
    level = math.log(1 / alpha) - math.log(2.0) - 0.5 * math.log(variance / total)
    return _z_boundary(level) * math.sqrt(variance * total) / tau


def crossing_probability(
    n: float, *, unit_variance: float, tau: float, alpha: float, effect: float
) -> float:
    """The chance that a true difference of `effect` has crossed the boundary by `n` samples.

    The sum of the differences is a Brownian motion with drift `effect` and variance
    `unit_variance` per sample; the boundary is taken flat at its value at n (it grows slowly),
    where the reflection principle gives the first-passage probability
    Φ((δn − a)/σ√n) + e^{2δa/σ²} Φ((−δn − a)/σ√n).
    """
    level = n * threshold(unit_variance / n, tau=tau, alpha=alpha)
    spread = math.sqrt(unit_variance * n)
    direct = _log_phi((effect * n - level) / spread)
    reflected = 2 * effect * level / unit_variance + _log_phi((-effect * n - level) / spread)
    return min(1.0, math.exp(direct) + math.exp(min(reflected, 700.0)))


def samples_needed(
    difference: Difference, *, tau: float, alpha: float, effect: float
) -> int | None:
    """Treatment samples beyond today's by which a true difference of `effect` has, as likely
    as not, been found significant: the median time to decision.

    Not where the expected path meets the boundary: a noisy path crosses it first more often
    than not, so that figure overstates the wait (about 1.5× in simulations). The variance
    shrinks as unit_variance / n (the split kept); the n is bracketed from today's count, then
    bisected to 1 % — an estimate of traffic to come needs no more, and the tick asks it of every
    criterion each minute.
    """
    if effect <= 0 or tau <= 0:
        return None
    unit = difference.unit_variance
    if unit <= 0:
        return 0

    def reaches(n: float) -> bool:
        return (
            crossing_probability(n, unit_variance=unit, tau=tau, alpha=alpha, effect=effect) >= 0.5
        )

    now = max(1.0, difference.samples)
    if reaches(now):
        return 0
    low, high = now, now * 2
    while not reaches(high):
        if high > HORIZON:
            return None
        low, high = high, high * 2
    while high - low > max(1.0, low * 0.01):
        middle = (low + high) / 2
        if reaches(middle):
            high = middle
        else:
            low = middle
    return max(0, math.ceil(high - difference.samples))


def fixed_samples_needed(
    difference: Difference, *, alpha: float, effect: float, power: float = 0.8
) -> int | None:
    """Treatment samples one fixed-horizon one-sided test needs to find `effect` with `power`
    (the textbook (z_α + z_β)² σ² / δ²), for comparing with a window's size."""
    from scipy.stats import norm

    if effect <= 0 or difference.unit_variance <= 0:
        return None
    z = norm.ppf(1 - alpha) + norm.ppf(power)
    return math.ceil(z * z * difference.unit_variance / (effect * effect))

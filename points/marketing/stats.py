"""The statistics of the uplift report, by hand (no numpy/scipy in the product's dependencies).

- :func:`summary` — count, mean and sample variance of per-customer values;
- :func:`welch_interval` — Welch's t interval for the difference of two means (unequal
  variances, Welch-Satterthwaite degrees of freedom);
- :func:`t_quantile` — Student's t quantile, from its CDF (the regularised incomplete beta
  function, by Lentz's continued fraction) inverted by bisection; the normal quantile
  (``statistics.NormalDist``) beyond 10^7 degrees of freedom.

Estimates are floats: they are statistics, never amounts posted to the ledger.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

__all__ = ["Interval", "Summary", "summary", "t_cdf", "t_quantile", "welch_interval"]

_NORMAL_DF: Final = 1e7  # beyond this, t and normal quantiles agree to 7 digits


@dataclass(frozen=True, slots=True)
class Summary:
    """Count, mean and sample variance (n - 1 in the denominator) of some values."""

    n: int
    mean: float
    variance: float

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance)


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with its two-sided interval, ``confidence`` (0.95) and the degrees of freedom."""

    estimate: float
    low: float
    high: float
    confidence: float
    df: float

    def scaled(self, factor: float) -> Interval:
        return Interval(
            self.estimate * factor, self.low * factor, self.high * factor, self.confidence, self.df
        )

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def summary(values: Iterable[float]) -> Summary:
    """Welford's one-pass mean and variance (stable for large sums of money)."""
    n = 0
    mean = 0.0
    m2 = 0.0
    for value in values:
        n += 1
        delta = value - mean
        mean += delta / n
        m2 += delta * (value - mean)
    variance = m2 / (n - 1) if n > 1 else 0.0
    return Summary(n, mean if n else 0.0, variance)


def welch_interval(treated: Summary, control: Summary, confidence: float = 0.95) -> Interval:
    """Welch's interval for ``treated.mean - control.mean``.

    Raises ValueError when either group has fewer than two values (no variance to estimate).
    When both groups have zero variance the interval is the point itself.
    """
    if treated.n < 2 or control.n < 2:
        raise ValueError("each group needs at least two customers")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    a = treated.variance / treated.n
    b = control.variance / control.n
    difference = treated.mean - control.mean
    se = math.sqrt(a + b)
    if se == 0.0:
        return Interval(difference, difference, difference, confidence, math.inf)
    df = (a + b) ** 2 / (a * a / (treated.n - 1) + b * b / (control.n - 1))
    margin = t_quantile(0.5 + confidence / 2, df) * se
    return Interval(difference, difference - margin, difference + margin, confidence, df)


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (df > 0)."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    x = df / (df + t * t)
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t value with P(T <= t) = p (0 < p < 1), to about 1e-10."""
    if not 0 < p < 1:
        raise ValueError("p must be between 0 and 1")
    if df >= _NORMAL_DF:
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:  # t quantiles grow fast for df < 1; double until bracketed
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Numerical Recipes, 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta, by Lentz's method."""
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 3e-16:
            break
    return h

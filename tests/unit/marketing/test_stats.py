"""The report's statistics against published values (t tables) and a hand-worked example."""

from __future__ import annotations

import math
import random

import pytest

from points.marketing.stats import Summary, summary, t_cdf, t_quantile, welch_interval


@pytest.mark.parametrize(
    ("df", "expected"),
    [(1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (30, 2.0423), (120, 1.9799)],
)
def test_t_quantile_matches_the_t_table(df: int, expected: float) -> None:
    """97.5% quantiles of Student's t, as printed in every t table (4 decimals)."""
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-5)


def test_t_quantile_is_symmetric_fractional_and_tends_to_the_normal() -> None:
    """Lower tail is minus the upper; Welch's fractional df work; huge df give 1.95996."""
    assert t_quantile(0.025, 7) == pytest.approx(-t_quantile(0.975, 7))
    assert t_quantile(0.95, 4.5) == pytest.approx(2.0150 + (2.1318 - 2.0150) * 0.5, abs=0.02)
    assert t_quantile(0.975, 1e9) == pytest.approx(1.959964, abs=1e-6)
    assert t_cdf(0.0, 3) == pytest.approx(0.5)
    assert t_cdf(t_quantile(0.9, 3.3), 3.3) == pytest.approx(0.9, abs=1e-10)


def test_summary_is_the_sample_mean_and_variance() -> None:
    """Mean 5 and sample variance 32/7 for this textbook list."""
    result = summary([2, 4, 4, 4, 5, 5, 7, 9])
    assert (result.n, result.mean) == (8, 5.0)
    assert result.variance == pytest.approx(32 / 7)


def test_welch_interval_by_hand() -> None:
    """Two groups worked by hand: difference 2, SE sqrt(4/10 + 1/5) = 0.7746, Welch df
    0.36 / (0.16/9 + 0.04/4) = 12.96, t(0.975, 12.96) ~ 2.161 (between the table's 13 and 12)."""
    treated = Summary(n=10, mean=12.0, variance=4.0)
    control = Summary(n=5, mean=10.0, variance=1.0)
    interval = welch_interval(treated, control)
    se = math.sqrt(4 / 10 + 1 / 5)
    df = (0.4 + 0.2) ** 2 / (0.4**2 / 9 + 0.2**2 / 4)
    assert interval.df == pytest.approx(df)
    assert df == pytest.approx(12.96)
    assert interval.estimate == 2.0
    assert interval.high - 2.0 == pytest.approx(t_quantile(0.975, df) * se)
    assert interval.low == pytest.approx(2.0 - (interval.high - 2.0))
    assert (interval.high - 2.0) / se == pytest.approx(2.161, abs=1e-3)


def test_welch_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    """Coverage check on simulated skewed (spend-like) data with a known difference of 3."""
    rng = random.Random(7)
    covered = 0
    trials = 400
    for _ in range(trials):
        treated = summary(rng.expovariate(1 / 23) for _ in range(60))
        control = summary(rng.expovariate(1 / 20) for _ in range(40))
        covered += welch_interval(treated, control).contains(3.0)
    assert 0.91 <= covered / trials <= 0.985


def test_welch_interval_needs_two_customers_a_group() -> None:
    """One customer has no variance: refused with a reason, not a made-up interval."""
    with pytest.raises(ValueError, match="at least two"):
        welch_interval(Summary(1, 5.0, 0.0), Summary(10, 4.0, 1.0))

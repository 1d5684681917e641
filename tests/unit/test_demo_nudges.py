"""The demo's nudges: simulated customers carry a marketing opt-in (simulation/traffic.py),
and the day's summary prints what was sent and what was suppressed, with the reasons
(demo/summary.py)."""

from __future__ import annotations

import io
import json
from collections import Counter

from rich.console import Console

from demo.summary import DaySummary, render_nudges
from simulation.traffic import generate_day, marketing_consent


def test_simulated_profiles_say_yes_no_or_nothing_about_marketing_in_stable_shares() -> None:
    """About 70% opt in, 20% opt out and 10% were never asked (the field is absent, which the
    nudges read as no); the same customer id always gets the same answer."""
    day = generate_day(seed=3, customers=5_000, transactions=10, prefix="t")
    answers = Counter(
        json.loads(value).get("marketing_consent", "absent") for _, value in day.customers
    )
    assert set(answers) == {True, False, "absent"}
    assert 0.66 < answers[True] / 5_000 < 0.74
    assert 0.17 < answers[False] / 5_000 < 0.23
    assert 0.08 < answers["absent"] / 5_000 < 0.12
    assert all(marketing_consent("t-c0000042") == marketing_consent("t-c0000042") for _ in "ab")


def test_the_summary_prints_sent_and_suppressed_per_nudge_and_the_reasons() -> None:
    """One row per nudge with its sent and suppressed counts, then suppressed by reason."""
    summary = DaySummary()
    summary.nudges.update(
        {("regular-nearly", "sent"): 41, ("regular-nearly", "suppressed"): 12,
         ("eshop-try-ridehail", "sent"): 300}
    )
    summary.nudges_suppressed.update({"no_consent": 9, "quiet_hours": 3})
    out = io.StringIO()
    render_nudges(Console(file=out, width=200, color_system=None), summary)
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.getvalue().splitlines()
            if "│" in line]
    assert ["regular-nearly", "41", "12"] in rows
    assert ["eshop-try-ridehail", "300", "0"] in rows
    assert ["no_consent", "9"] in rows and ["quiet_hours", "3"] in rows


def test_a_day_without_nudges_says_so_rather_than_printing_an_empty_table() -> None:
    """No nudge triggered: one row that says none, and no reasons table."""
    out = io.StringIO()
    render_nudges(Console(file=out, width=200, color_system=None), DaySummary())
    assert "none triggered" in out.getvalue()
    assert "by reason" not in out.getvalue()

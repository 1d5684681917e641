"""The demo's red packets summary (demo/summary.py) prints the fission funnel it is given:
one row per generation of senders and a total, the request count, and the refusals."""

from __future__ import annotations

import io

from rich.console import Console

from demo.packets_day import PacketsDay, identity
from demo.summary import render_packets


def test_the_funnel_is_printed_by_generation_with_a_total() -> None:
    """Generation 0 and 1 rows with their numbers, a total row, and the refusals seen."""
    rows = [
        {"generation": 0, "sent": 30, "points_sent": 12_000, "opened": 210, "claimed": 150,
         "points_claimed": 7_291, "new_customers": 30},
        {"generation": 1, "sent": 15, "points_sent": 643, "opened": 15, "claimed": 15,
         "points_claimed": 325, "new_customers": 15},
    ]
    total = {k: sum(int(r[k]) for r in rows) for k in rows[0] if k != "generation"}
    day = PacketsDay(funnel={"steps": ["sent", "opened", "claimed", "new_customers"],
                             "generations": rows, "total": total},
                     refused={"packet_empty": 2}, requests=390, took_s=2.9)
    out = io.StringIO()
    render_packets(Console(file=out, width=200, color_system=None), day)
    text = out.getvalue()
    lines = [line for line in text.splitlines() if "│" in line]
    assert any("generation 0" in line and "12,000" in line and "7,291" in line
               for line in lines)
    assert any("generation 1" in line and "643" in line for line in lines)
    assert any(line.split("│")[1].strip() == "all" and "12,643" in line and "225" in line
               for line in lines)
    assert "390 API requests" in text and "packet_empty" in text


def test_a_newcomer_reserves_and_onboards_under_one_identity_hash() -> None:
    """The reservation's contact hash and the onboarding's identity hash are the same
    (so the funnel counts one person), and differ between people."""
    assert identity("d1-pk-new-001") == identity("d1-pk-new-001")
    assert identity("d1-pk-new-001") != identity("d1-pk-new-002")
    assert len(identity("x")) == 64

"""Backtest: both rule sets replay the same recorded events; totals, cost, per-rule, difference."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from points.events import CheckIn, CustomerProfile, Purchase, Refund
from points.rules.backtest import PointCost, backtest, main
from tests.unit.rules.builders import at, check_in, make_ruleset, profile, purchase, refund

CURRENT = make_ruleset(
    """
- {id: base, kind: base_rate, points: 1, per_minor: 100}
- {id: checkin, kind: social, action: check_in, points: 5, cap: {per_day: 5}}
"""
)
CANDIDATE = make_ruleset(
    """
- {id: base, kind: base_rate, points: 1, per_minor: 100}
- {id: checkin, kind: social, action: check_in, points: 5, cap: {per_day: 5}}
- id: dining-x2
  kind: campaign
  window: {starts_at: "2026-01-01T00:00:00+08:00", ends_at: "2027-01-01T00:00:00+08:00"}
  match: {mcc_groups: [dining]}
  extra_percent: 100
"""
)


def _events() -> list[Purchase | CheckIn | Refund]:
    dinner = purchase(10_000, mcc="5812", customer_id="c-1")
    return [
        purchase(5_000, customer_id="c-1"),
        dinner,
        check_in("2026-11-27", customer_id="c-2"),
        purchase(20_000, mcc="5812", customer_id="c-3"),  # no profile: scored as unknown
        refund(dinner, 5_000),
    ]


def test_backtest_reports_points_cost_customers_and_per_rule_difference() -> None:
    """The candidate's dining bonus shows in totals, cost, per rule, and changed customers; a
    customer without a profile is scored as live earning scores them (unknown profile)."""
    profiles = {cid: profile(customer_id=cid) for cid in ("c-1", "c-2")}
    report = backtest(
        CANDIDATE, CURRENT, _events(), profiles, cost=PointCost(minor=2, per_points=3)
    )
    assert report.current.points_awarded == 50 + 100 + 5 + 200
    assert report.current.points_clawed_back == 50
    assert report.candidate.points_awarded == 50 + 200 + 5 + 400
    assert report.candidate.points_clawed_back == 100
    assert report.net_points_difference == 555 - 305 == 250
    assert report.current.cost_minor == 204  # 305 points * 2 / 3 = 203.3, rounded up
    assert report.candidate.cost_minor == 370  # 555 * 2 / 3
    assert report.cost_difference_minor == 166
    assert report.candidate.customers_earning == 3
    assert report.customers_changed == 2
    assert report.rule_rows() == [
        ("base", 300, 300, 0),
        ("checkin", 5, 5, 0),
        ("dining-x2", 250, 0, 250),
    ]
    assert report.events_read == 5
    assert report.events_evaluated == 5
    assert report.events_skipped == {}


def test_profiles_in_the_event_stream_apply_to_later_events() -> None:
    """A bank.customers message among the events gives that customer a profile from then on;
    before it, the customer is scored as unknown (as live earning does)."""
    joined = CustomerProfile(
        event_type="customer_profile",
        event_id="prof-3",
        customer_id="c-3",
        occurred_at=at("2026-11-01"),
        segment="young",
        joined_at=at("2026-11-01"),
        birth_year=2001,
        status="active",
    )
    events = [purchase(1_000, customer_id="c-3"), joined, purchase(1_000, customer_id="c-3")]
    report = backtest(CANDIDATE, CURRENT, events, {})
    assert report.current.points_awarded == 10 + 10
    assert report.profiles_applied == 1
    assert report.events_skipped == {}


def _write(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rules = Path(__file__).resolve().parents[3] / "rules" / "default.yaml"
    events = [e.model_dump(mode="json") for e in _events()]
    profiles = [
        {
            "event_type": "customer_profile",
            "event_id": f"pr-{cid}",
            "customer_id": cid,
            "occurred_at": "2026-01-01T00:00:00+08:00",
            "segment": "mass",
            "joined_at": "2020-01-01T00:00:00+08:00",
            "birth_year": 1990,
            "status": "active",
        }
        for cid in ("c-1", "c-2")
    ]
    return {
        "rules": rules,
        "events": _write(tmp_path / "events.jsonl", events),
        "profiles": _write(tmp_path / "profiles.jsonl", profiles),
    }


def test_backtest_command_prints_a_table_and_json(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI compares two rule files over a JSONL file: a table by default, JSON on request."""
    args = [
        "--candidate",
        str(files["rules"]),
        "--current",
        str(files["rules"]),
        "--events",
        str(files["events"]),
        "--profiles",
        str(files["profiles"]),
    ]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "net points" in table and "net points by rule" in table
    assert "customers whose points change: 0" in table
    assert main([*args, "--json", "--cost-per-point-minor", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["difference"]["net_points"] == 0
    assert data["candidate"]["cost_minor"] == 3 * data["candidate"]["net_points"]
    assert data["events_read"] == 5


def test_backtest_command_exits_2_on_a_bad_event_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A line that is not a valid message stops the run with its line number."""
    files["events"].write_text(files["events"].read_text() + '{"event_type": "purchase"}\n')
    args = [
        "--candidate",
        str(files["rules"]),
        "--current",
        str(files["rules"]),
        "--events",
        str(files["events"]),
    ]
    assert main(args) == 2
    assert "events.jsonl:6" in capsys.readouterr().err

"""``customer show`` and ``customer export``, and the dashboard's stage counts, over the rule
state the earning worker stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from points.earning import store
from points.marketing.profiles import EXPORT_COLUMNS, stage_counts
from points.rules import load_ruleset
from points.rules.plan import plan_of
from tests.integration.cli.support import cli, cli_json, engine_for
from tests.unit.rules.builders import check_in, make_ruleset, purchase, run

RULES = make_ruleset("""
- id: everyday
  kind: base_rate
  points: 1
  per_minor: 100
""")
WEEKLY = [f"2026-03-{d:02d}" for d in (1, 8, 15, 22, 29)] + [
    f"2026-04-{d:02d}" for d in (5, 12, 19, 26)
]


def seed_states(url: str) -> None:
    """at-risk: a weekly diner gone quiet, seen again by an app check-in on 2026-06-01;
    steady: a weekly grocer whose newest purchase is 2026-05-31; onboarded: a profile from
    core banking and no event."""
    at_risk = run(RULES, [purchase(2_000, mcc="5812", when=d, customer_id="at-risk")
                          for d in WEEKLY] + [check_in("2026-06-01", "at-risk")])[-1].state
    steady_days = WEEKLY + [f"2026-05-{d:02d}" for d in (3, 10, 17, 24, 31)]
    steady = run(RULES, [purchase(1_000, merchant_id="M-RIDE", when=d, customer_id="steady")
                         for d in steady_days])[-1].state
    with engine_for(url) as engine, engine.begin() as conn:
        store.save_states_versioned(
            conn, {"at-risk": (at_risk.to_json(), 1), "steady": (steady.to_json(), 1)}
        )
        store.save_profiles(conn, {"onboarded": ({"segment": "young"}, None),
                                   "at-risk": ({"segment": "mass"}, None)})


def test_show_prints_the_profile_as_of_the_customers_newest_event(migrated_url: str) -> None:
    """The weekly diner is at risk as of their check-in; --as-of asks about another day; the
    table names the same stage."""
    seed_states(migrated_url)
    data = cli_json(migrated_url, "customer", "show", "at-risk", "--rules", "rules/default.yaml")
    assert data["lifecycle"] == "at_risk" and data["as_of"] == "2026-06-01"
    assert (data["purchases_30d"], data["purchases_90d"]) == (0, 8)  # 2026-03-04 on
    assert data["spend_90d_minor"] == 16_000 and data["recency_days"] == 36
    assert data["segment"] == "mass"
    assert data["top_mcc_groups"][0]["purchases"] == 9
    earlier = cli_json(migrated_url, "customer", "show", "at-risk", "--as-of", "2026-04-26")
    assert earlier["lifecycle"] == "active"
    later = cli_json(migrated_url, "customer", "show", "at-risk", "--as-of", "2026-07-01")
    assert later["lifecycle"] == "dormant"
    steady = cli_json(migrated_url, "customer", "show", "steady")
    assert steady["lifecycle"] == "active"
    assert steady["partner_affinity"] == [{"partner": "ridehail", "purchases": 14}]
    table = cli(migrated_url, "customer", "show", "at-risk")
    assert table.exit_code == 0, table.output
    assert "at_risk" in table.stdout and "Partner affinity" in table.stdout


def test_show_without_events_and_unknown_customers(migrated_url: str) -> None:
    """A customer known only from core banking is new with no event; an unknown one exits 3
    with a one-line message, and a bad --as-of exits 2."""
    seed_states(migrated_url)
    data = cli_json(migrated_url, "customer", "show", "onboarded")
    assert (data["lifecycle"], data["as_of"], data["segment"]) == ("new", None, "young")
    unknown = cli(migrated_url, "customer", "show", "nobody")
    assert unknown.exit_code == 3 and unknown.stdout == ""
    assert "no customer 'nobody'" in unknown.stderr
    bad = cli(migrated_url, "customer", "show", "steady", "--as-of", "June")
    assert bad.exit_code == 2 and "--as-of 'June' is not a day" in bad.stderr


def test_export_writes_every_customer_as_of_the_newest_event_day(
    migrated_url: str, tmp_path: Path
) -> None:
    """One CSV row per customer with an event, all as of the newest event day any customer
    has (2026-06-01), with the documented columns; --format parquet is refused (exit 2)."""
    seed_states(migrated_url)
    out = tmp_path / "profiles.csv"
    data = cli_json(migrated_url, "customer", "export", "--format", "csv", "--out", str(out))
    assert (data["rows"], data["as_of"]) == (2, "2026-06-01")
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    by_id = {row["customer_id"]: row for row in rows}
    assert by_id["at-risk"]["lifecycle"] == "at_risk"
    assert by_id["at-risk"]["top_mcc_groups"] == "dining:9"
    assert by_id["steady"]["lifecycle"] == "active"
    assert by_id["steady"]["top_partner"] == "ridehail" and by_id["steady"]["segment"] == ""
    assert not list(tmp_path.glob("*.partial"))
    refused = cli(migrated_url, "customer", "export", "--format", "parquet", "--out", str(out))
    assert refused.exit_code == 2


def test_stage_counts_count_everyone_as_of_one_day(migrated_url: str) -> None:
    """The dashboard's counts: one at risk, one active, as of the newest event day."""
    seed_states(migrated_url)
    thresholds = plan_of(load_ruleset("rules/default.yaml")).lifecycle
    with engine_for(migrated_url) as engine, engine.connect() as conn:
        counts = stage_counts(conn, thresholds)
        later = stage_counts(conn, thresholds, as_of=date(2026, 8, 1))
    assert counts["as_of"] == "2026-06-01" and counts["customers"] == 2
    assert counts["stages"] == {"new": 0, "active": 1, "at_risk": 1, "dormant": 0,
                                "reactivated": 0}
    assert later["stages"]["dormant"] == 2

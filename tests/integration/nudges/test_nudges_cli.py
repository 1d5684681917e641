"""``points-ledger nudges list`` shows every nudge decided, filtered by customer and by
suppressed, on SQLite and PostgreSQL (seeded through the earning service)."""

from __future__ import annotations

from pathlib import Path

from points.earning import EarningService
from points.rules import load_ruleset
from points.settings import TopicNames
from tests.integration.cli.support import cli, cli_json, engine_for
from tests.integration.nudges.test_purchase_nudges import NOW, Feed

RULES = Path(__file__).resolve().parents[2] / "fixtures" / "rules-nudges.yaml"


def test_nudges_list_filters_by_customer_and_suppressed(migrated_url: str) -> None:
    """ben: the badge nudge sent, then the cross-sell suppressed by the daily cap; cat: no
    consent. --suppressed lists the two suppressed with their reasons; --customer one each."""
    feed = Feed()
    with engine_for(migrated_url) as engine:
        service = EarningService(engine, load_ruleset(RULES), TopicNames(), clock=lambda: NOW)
        service.process([
            feed.profile("ben", True), feed.profile("cat", False),
            *(feed.purchase(f"b{i}", "ben") for i in range(3)),
            *(feed.purchase(f"c{i}", "cat") for i in range(3)),
        ])
        service.process([feed.purchase("b-eshop", "ben", merchant="m-eshop", at="10:00")])

    everything = cli_json(migrated_url, "nudges", "list")["nudges"]
    assert len(everything) == 3
    suppressed = cli_json(migrated_url, "nudges", "list", "--suppressed")["nudges"]
    assert sorted((n["customer_id"], n["reason_code"]) for n in suppressed) == [
        ("ben", "cap_per_day"), ("cat", "no_consent"),
    ]
    ben = cli_json(migrated_url, "nudges", "list", "--customer", "ben")["nudges"]
    assert sorted((n["nudge"], n["outcome"]) for n in ben) == [
        ("badge-nearly", "sent"), ("try-ridehail", "suppressed"),
    ]
    shown = cli(migrated_url, "nudges", "list", "--suppressed")
    assert shown.exit_code == 0 and "cap_per_day" in shown.output

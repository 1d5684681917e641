"""Base rates by MCC group and channel, co-brand multipliers, first purchase at a partner."""

from __future__ import annotations

import pytest

from points.events import PartnerPurchase
from tests.unit.rules.builders import at, make_ruleset, points_by_rule, profile, purchase, run

BASE = """
- id: no-cash
  kind: base_rate
  channels: [atm, transfer]
  points: 0
  per_minor: 100
- id: dining
  kind: base_rate
  mcc_groups: [dining, ride_hailing]
  points: 2
  per_minor: 100
- id: travel
  kind: base_rate
  mcc_groups: [travel]
  points: 3
  per_minor: 200
- id: online-shop
  kind: base_rate
  mcc_groups: [ecommerce]
  channels: [online, mobile]
  points: 3
  per_minor: 100
- id: everyday
  kind: base_rate
  points: 1
  per_minor: 100
"""


@pytest.mark.parametrize(
    ("amount", "mcc", "channel", "rule_id", "points"),
    [
        (10_000, "5411", "card_present", "everyday", 100),
        (10_099, "5411", "card_present", "everyday", 100),  # 100.99 points rounds down
        (99, "5411", "card_present", "everyday", 0),  # under one yuan earns nothing
        (8_850, "5812", "card_present", "dining", 177),
        (8_850, "5814", "mobile", "dining", 177),
        (8_850, "4121", "mobile", "dining", 177),
        (10_001, "3100", "online", "travel", 150),  # 150.015 rounds down; 3000-3299 range
        (10_000, "4511", "online", "travel", 150),
        (10_000, "5311", "online", "online-shop", 300),
        (10_000, "5311", "card_present", "everyday", 100),  # channel not matched: falls through
        (10_000, "5812", "atm", "no-cash", 0),  # the first matching rule wins
        (10_000, "9999", "transfer", "no-cash", 0),
        (10_000, "7299", "card_present", "everyday", 100),  # unclassified MCC
    ],
)
def test_base_rate_picks_the_first_matching_rule_and_rounds_down(
    amount: int, mcc: str, channel: str, rule_id: str, points: int
) -> None:
    """The first base_rate rule (file order) matching MCC group and channel fires, rounded down."""
    [result] = run(make_ruleset(BASE), [purchase(amount, mcc=mcc, channel=channel)])
    assert points_by_rule(result)[rule_id] == points
    assert result.points == points
    assert result.ruleset_version == "test-1"
    assert result.rule_ids == (rule_id,)


def test_no_matching_base_rule_earns_nothing_and_says_why() -> None:
    """Without a catch-all base rule, an unmatched purchase earns 0 with a note."""
    rules = make_ruleset(BASE.split("- id: everyday")[0])
    [result] = run(rules, [purchase(10_000, mcc="7299")])
    assert result.points == 0
    assert any("no base_rate rule" in note for note in result.notes)


@pytest.mark.parametrize(
    ("currency", "status", "points", "note"),
    [
        ("CNY", "active", 100, None),
        ("CNY", "dormant", 100, None),
        ("USD", "active", 0, "currency USD does not earn"),
        ("CNY", "frozen", 0, "status 'frozen' does not earn"),
        ("CNY", "closed", 0, "status 'closed' does not earn"),
    ],
)
def test_only_eligible_customers_earn_and_only_in_the_rule_set_currency(
    currency: str, status: str, points: int, note: str | None
) -> None:
    """Foreign-currency purchases and frozen or closed customers earn nothing, with a reason."""
    [result] = run(
        make_ruleset(BASE), [purchase(10_000, currency=currency)], profile(status=status)
    )
    assert result.points == points
    if note is not None:
        assert any(note in n for n in result.notes)


MULTIPLIERS = (
    BASE
    + """
- id: ride-x3
  kind: partner_multiplier
  partners: [ridehail]
  multiplier_percent: 300
- id: shop-x15
  kind: partner_multiplier
  partners: [eshop]
  multiplier_percent: 150
"""
)


@pytest.mark.parametrize(
    ("merchant", "declared", "mcc", "expected"),
    [
        ("M-RIDE", None, "4121", {"dining": 177, "ride-x3": 354}),  # partner by merchant id
        ("M-OTHER", "ridehail", "4121", {"dining": 177, "ride-x3": 354}),  # declared on event
        ("M-SHOP", None, "5411", {"everyday": 88, "shop-x15": 44}),  # 88 * 50% = 44
        ("M-OTHER", None, "4121", {"dining": 177}),  # not a partner
    ],
)
def test_co_brand_multipliers_add_a_percentage_of_base_points_at_partners(
    merchant: str, declared: str | None, mcc: str, expected: dict[str, int]
) -> None:
    """A partner multiplier of N% adds (N - 100)% of the base points, rounded down."""
    event = purchase(8_850, mcc=mcc, merchant_id=merchant, partner_id=declared, channel="mobile")
    [result] = run(make_ruleset(MULTIPLIERS), [event])
    assert points_by_rule(result) == expected
    assert result.points == sum(expected.values())


FIRST = (
    BASE
    + """
- id: first-ride
  kind: first_partner_purchase
  partners: [ridehail]
  points: 200
- id: first-shop
  kind: first_partner_purchase
  partners: [eshop]
  points: 300
  min_amount_minor: 3000
"""
)


@pytest.mark.parametrize(
    ("purchases", "bonuses"),
    [
        ([("M-RIDE", 1000), ("M-RIDE", 1000)], [200, 0]),
        ([("M-RIDE", 1000), ("M-SHOP", 5000), ("M-SHOP", 5000)], [200, 300, 0]),
        ([("M-SHOP", 2999), ("M-SHOP", 3000)], [0, 0]),  # the first one was below the minimum
        ([("M-OTHER", 5000), ("M-RIDE", 5000)], [0, 200]),
    ],
)
def test_first_purchase_at_each_partner_earns_its_bonus_once(
    purchases: list[tuple[str, int]], bonuses: list[int]
) -> None:
    """Each partner's bonus fires on the very first purchase there (if big enough), then never."""
    events = [purchase(amount, merchant_id=merchant) for merchant, amount in purchases]
    results = run(make_ruleset(FIRST), events)
    got = [
        sum(p for r, p in points_by_rule(res).items() if r.startswith("first-")) for res in results
    ]
    assert got == bonuses


def test_a_partner_purchase_event_earns_through_the_same_rules() -> None:
    """A purchase a partner reports for a linked member scores like a card purchase there."""
    event = PartnerPurchase(
        event_type="partner_purchase",
        event_id="pp-1",
        customer_id="c-1",
        occurred_at=at("2026-11-27"),
        partner_id="ridehail",
        partner_reference="order-1",
        amount_minor=5_000,
        currency="CNY",
        mcc="4121",
    )
    rules = make_ruleset(MULTIPLIERS + FIRST.removeprefix(BASE))
    [result] = run(rules, [event])
    assert points_by_rule(result) == {"dining": 100, "ride-x3": 200, "first-ride": 200}
    assert result.record().partner_id == "ridehail"

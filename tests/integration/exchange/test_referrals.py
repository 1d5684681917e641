"""Cross-referral on the ledger: codes, sign-ups from the bank and from partners, guards with
their recorded refusal reasons, qualification rewarding both sides in their own currency,
ambassador bonuses, and clawback when the qualifying purchase is refunded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from points.exchange.settlement import settle
from points.exchange.store import aware
from points.exchange.tables import partner_fees
from points.ledger import customer_balance
from points.referrals import ReferralPolicy, check_character, is_valid_code
from points.refusals import refusals
from tests.integration.exchange.support import (
    CONFIG,
    START,
    Clock,
    Exchange,
    bank,
    event,
    onboarded,
    purchase,
)

pytestmark = pytest.mark.integration


def points(x: Exchange, customer: str) -> tuple[int, int]:
    with x.engine.connect() as conn:
        b = customer_balance(conn, customer, now=x.clock.now)
    return b.available, b.debt


def status_of(x: Exchange, referee: str) -> list[tuple[str, str]]:
    return [(str(r.status), r.reason.split(":")[0]) for r in x.service.referrals_of(referee)]


def test_customer_invite_rewards_both_sides_with_the_ambassador_bonus(exchange: Exchange) -> None:
    """alice's code, bob onboards with it, bob's first purchase of at least 10 CNY within 30
    days qualifies: bob gets 500, alice 500 + 200 (first-referral ambassador bonus). A smaller
    purchase before it is ignored; a second purchase does not pay again."""
    x = exchange
    code = x.service.referral_code("alice")
    assert is_valid_code(code) and x.service.referral_code("alice") == code
    now = x.clock.now
    x.service.process_bank([bank(x, "bank_customers", onboarded("bob", code, now))])
    assert status_of(x, "bob") == [("signed_up", "signed_up")]
    x.service.process_bank([
        bank(x, "bank_transactions", purchase("p0", "bob", 500, now + timedelta(hours=1))),
        bank(x, "bank_transactions", purchase("p1", "bob", 1200, now + timedelta(days=2))),
        bank(x, "bank_transactions", purchase("p2", "bob", 9900, now + timedelta(days=3))),
    ])
    assert status_of(x, "bob") == [("rewarded", "rewarded")]
    assert points(x, "bob") == (500, 0) and points(x, "alice") == (700, 0)
    x.service.process_bank([bank(x, "bank_transactions",
                                 purchase("p1", "bob", 1200, now + timedelta(days=2)))])
    assert points(x, "alice") == (700, 0)  # replayed purchase: nothing again
    x.verify_clean()


def test_refund_of_the_qualifying_purchase_claws_back_every_reward(exchange: Exchange) -> None:
    """The qualifying purchase is refunded within 30 days: both rewards and the bonus are
    clawed back; bob had spent nothing, alice's share she no longer has becomes debt."""
    x = exchange
    code = x.service.referral_code("alice")
    now = x.clock.now
    x.service.process_bank([
        bank(x, "bank_customers", onboarded("bob", code, now)),
        bank(x, "bank_transactions", purchase("p1", "bob", 5000, now + timedelta(days=1))),
    ])
    assert points(x, "alice") == (700, 0)
    refund = {**purchase("r1", "bob", 5000, now + timedelta(days=5)), "event_type": "refund",
              "original_event_id": "p1"}
    x.service.process_bank([bank(x, "bank_transactions", refund)])
    assert status_of(x, "bob") == [("clawed_back", "clawed_back")]
    assert points(x, "bob") == (0, 0) and points(x, "alice") == (0, 0)
    x.verify_clean()


def test_guards_refuse_with_recorded_reasons(fresh_pg_url: str) -> None:
    """self_referral (own code), already_referred (second code for a referred customer),
    velocity_limit (more than 2 sign-ups an hour), monthly_cap_reached (more than 3 in the
    month), window_passed (first qualifying purchase after 30 days) — each stored on the
    referral with its reason; nothing is rewarded for them."""
    import uuid

    from points.db import make_engine
    from points.migrate import upgrade
    from tests.integration.exchange.support import fresh_keys_env

    upgrade(fresh_pg_url)
    engine = make_engine(fresh_pg_url)
    x = Exchange(engine, Clock(), f"t{uuid.uuid4().hex[:8]}.", fresh_keys_env(),
                 policy=ReferralPolicy(monthly_cap=3, velocity_per_hour=2))
    alice = x.service.referral_code("alice")
    carol = x.service.referral_code("carol")
    now = x.clock.now
    x.service.process_bank([
        bank(x, "bank_customers", onboarded("alice", alice, now)),
        bank(x, "bank_customers", onboarded("b1", alice, now)),
    ])
    x.service.process_bank([bank(x, "bank_customers",
                                 {**onboarded("b1", carol, now), "event_id": "on-b1-again"})])
    x.service.process_bank([
        bank(x, "bank_customers", onboarded("b2", alice, now)),
        bank(x, "bank_customers", onboarded("b3", alice, now)),
    ])
    x.clock.advance(hours=2)
    x.service.process_bank([
        bank(x, "bank_customers", onboarded("b4", alice, x.clock.now)),
        bank(x, "bank_customers", onboarded("b5", alice, x.clock.now)),
    ])
    assert status_of(x, "alice") == [("refused", "self_referral")]
    assert sorted(status_of(x, "b1")) == [
        ("refused", "already_referred"), ("signed_up", "signed_up")]
    assert status_of(x, "b2") == [("signed_up", "signed_up")]
    assert status_of(x, "b3") == [("refused", "velocity_limit")]
    assert status_of(x, "b4") == [("signed_up", "signed_up")]
    assert status_of(x, "b5") == [("refused", "monthly_cap_reached")]
    late = now + timedelta(days=31)
    x.service.process_bank([bank(x, "bank_transactions", purchase("p-b2", "b2", 5000, late))])
    assert status_of(x, "b2") == [("refused", "window_passed")]
    x.clock.now = now + timedelta(days=40)
    assert x.service.expire_due() == 2  # b1 and b4 never qualified
    assert status_of(x, "b4") == [("refused", "window_passed")]
    assert points(x, "alice") == (0, 0)
    assert sorted(r[3] for r in refusal_rows(x)) == [
        "already_referred", "monthly_cap_reached", "self_referral", "velocity_limit",
        "window_passed", "window_passed", "window_passed"]
    x.verify_clean()
    engine.dispose()


def test_partner_member_opening_an_account_pays_the_partner_its_fee(exchange: Exchange) -> None:
    """ridehail's member signs up with ridehail's offer code (referral_signup on ridehail's
    topic); their first qualifying transaction gives them 500 bank points and owes ridehail
    the 20 CNY referral fee, which the period's settlement shows."""
    x = exchange
    code = x.service.partner_referral_code("ridehail")
    x.service.process([x.signed("ridehail", event(
        "referral_signup", "newbie", "ridehail", "rs-1", x.clock.now, referral_code=code,
        partner_member_id="R-77"))])
    assert status_of(x, "newbie") == [("signed_up", "signed_up")]
    x.service.process_bank([bank(x, "bank_transactions",
                                 purchase("p1", "newbie", 2000, x.clock.now))])
    assert points(x, "newbie") == (500, 0)
    with x.engine.connect() as conn:
        s = settle(conn, CONFIG.get("ridehail"), START - timedelta(days=1),
                   START + timedelta(days=1))
    assert s.referral_fees_minor == 2000 and s.net_amount_minor == 2000
    x.verify_clean()


def test_customer_joining_a_partner_from_the_app_is_rewarded_by_partner_request(
    exchange: Exchange,
) -> None:
    """join_partner: a referral (referrer: the bank) and a member-link request carrying its
    id; the partner links the member (signed up); the member's first partner purchase
    qualifies it: the referee's reward goes to the partner as a referral_rewarded request
    (priced into settlement), and the partner owes the bank its 10 CNY fee."""
    x = exchange
    referral_id = x.service.join_partner("c9", "eshop", "E-9")
    x.round_trip("eshop")
    assert x.service.referral(referral_id).status == "signed_up"  # type: ignore[union-attr]
    x.service.process([x.signed("eshop", event(
        "partner_purchase", "c9", "eshop", "pp-1", x.clock.now, partner_reference="O-1",
        amount_minor=3000, currency="CNY"))])
    assert x.service.referral(referral_id).status == "rewarded"  # type: ignore[union-attr]
    requests = x.pending_requests("eshop")
    assert [b"referral_rewarded" in r["message_value"] for r in requests] == [True]
    with x.engine.connect() as conn:
        fees = sorted((r.kind, r.amount_minor) for r in conn.execute(select(partner_fees)))
    assert fees == [("referral_fee", -1000), ("referral_reward", 95)]  # 500 pts at 1.90/1000
    # the referee's reward is paid in the partner's program; the bank wallet holds only what
    # the rules award the linked member's partner purchase (eshop double + welcome bonus)
    assert points(x, "c9") == (partner_purchase_points("c9", "eshop", 3000, x), 0)
    x.verify_clean()


def partner_purchase_points(customer: str, partner: str, amount_minor: int, x: Exchange) -> int:
    """What the rules engine awards one first partner purchase of an undescribed customer."""
    from points.events import PartnerPurchase, partner_event_adapter
    from points.exchange.partner_events import DEFAULT_RULES_PATH
    from points.rules import Profile, RuleState, evaluate, load_ruleset

    body = event("partner_purchase", customer, partner, "pp-x", x.clock.now,
                 partner_reference="O-x", amount_minor=amount_minor, currency="CNY")
    purchase = partner_event_adapter.validate_python(body)
    assert isinstance(purchase, PartnerPurchase)
    result = evaluate(load_ruleset(DEFAULT_RULES_PATH), purchase,
                      Profile.unknown(customer), RuleState(), now=x.clock.now)
    return result.points


# ------------------------------------------------------ every onboarding with a code: an outcome


def refusal_rows(x: Exchange) -> list[tuple[str, str, str, str, str | None]]:
    with x.engine.connect() as conn:
        rows = conn.execute(
            select(refusals.c.dedupe_key, refusals.c.source, refusals.c.subject,
                   refusals.c.reason_code, refusals.c.customer_id).order_by(refusals.c.id)
        ).all()
    return [tuple(r) for r in rows]


def test_an_onboarding_whose_code_names_no_one_is_a_recorded_refusal(exchange: Exchange) -> None:
    """A well-formed code nobody owns (never shown by the app) and a malformed one each end
    in a refusal (referral:<event_id>, source referrals, subject referral) with its reason;
    replaying the batch records nothing twice and creates no referral."""
    x = exchange
    shown = x.service.referral_code("alice")
    nobodys = "Q" + shown[1:-1]
    nobodys += check_character(nobodys)
    batch = [
        bank(x, "bank_customers", onboarded("bob", nobodys, x.clock.now)),
        bank(x, "bank_customers", onboarded("carl", "ABCD", x.clock.now)),
    ]
    assert x.service.process_bank(batch) == {"signup:unknown_code": 1, "signup:invalid_code": 1}
    x.service.process_bank(batch)
    assert refusal_rows(x) == [
        ("referral:on-bob", "referrals", "referral", "unknown_code", "bob"),
        ("referral:on-carl", "referrals", "referral", "invalid_code", "carl"),
    ]
    assert x.service.referrals_of("bob") == [] and x.service.referrals_of("carl") == []


def test_a_referral_ring_is_refused_and_pays_nothing(exchange: Exchange) -> None:
    """A refers B, B refers C, then A (a customer who got a code in the app but was never
    onboarded on the bank's topics) onboards with C's code: A->B->C->A is refused as
    referral_ring and recorded; A's purchase pays the ring nothing, the two genuine
    referrals are paid as usual."""
    x = exchange
    now = x.clock.now
    a_code = x.service.referral_code("ring-a")
    x.service.process_bank([bank(x, "bank_customers", onboarded("ring-b", a_code, now))])
    b_code = x.service.referral_code("ring-b")
    x.service.process_bank([bank(x, "bank_customers", onboarded("ring-c", b_code, now))])
    c_code = x.service.referral_code("ring-c")
    x.service.process_bank([bank(x, "bank_customers", onboarded("ring-a", c_code, now))])
    assert status_of(x, "ring-a") == [("refused", "referral_ring")]
    (referral,) = x.service.referrals_of("ring-a")
    assert referral.reason == ("referral_ring: ring-a is in the referrer's chain "
                               "ring-c <- ring-b <- ring-a")
    assert (f"referral:{referral.referral_id}", "referrals", "referral", "referral_ring",
            "ring-a") in refusal_rows(x)
    later = now + timedelta(days=1)
    x.service.process_bank([
        bank(x, "bank_transactions", purchase(f"p-{c}", c, 5000, later))
        for c in ("ring-a", "ring-b", "ring-c")
    ])
    assert points(x, "ring-a") == (700, 0)  # referrer of B (500 + first-referral 200) only
    assert points(x, "ring-b") == (500 + 700, 0) and points(x, "ring-c") == (500, 0)
    x.verify_clean()


def test_an_existing_customer_onboarded_again_with_a_code_is_not_a_new_referee(
    exchange: Exchange,
) -> None:
    """dora has bought with the bank for a month when an onboarding with alice's code comes
    for her: already_a_customer, recorded; her next purchase pays nobody. A profile that
    says she joined in 2025 is evidence the same way."""
    x = exchange
    code = x.service.referral_code("alice")
    month_ago = x.clock.now - timedelta(days=30)
    x.service.process_bank([bank(x, "bank_transactions", purchase("old-1", "dora", 900,
                                                                  month_ago))])
    x.service.process_bank([bank(x, "bank_customers", onboarded("dora", code, x.clock.now))])
    assert status_of(x, "dora") == [("refused", "already_a_customer")]
    (referral,) = x.service.referrals_of("dora")
    assert "transaction" not in referral.reason and "purchase old-1" in referral.reason
    profile = {"event_type": "customer_profile", "event_id": "prof-ed", "customer_id": "ed",
               "occurred_at": x.clock.now.isoformat(), "joined_at": "2025-06-01T00:00:00+00:00",
               "segment": "mass", "status": "active"}
    x.service.process_bank([
        bank(x, "bank_customers", profile),
        bank(x, "bank_customers", onboarded("ed", code, x.clock.now)),
    ])
    assert status_of(x, "ed") == [("refused", "already_a_customer")]
    x.service.process_bank([
        bank(x, "bank_transactions", purchase(f"p-{c}", c, 5000,
                                              x.clock.now + timedelta(days=1)))
        for c in ("dora", "ed")
    ])
    assert points(x, "alice") == (0, 0) and points(x, "dora") == (0, 0)
    assert [r[3] for r in refusal_rows(x)] == ["already_a_customer", "already_a_customer"]
    x.verify_clean()


def test_a_second_account_of_the_same_person_is_refused_by_identity_hash(
    exchange: Exchange,
) -> None:
    """alice's onboarding carried her identity hash; a new account with another customer id
    and the same identity hash onboards with alice's code: self_referral_identity. Another
    person's genuinely new account with the code signs up; a second account of *that* person
    opened later with alice's code is already_a_customer (the same person banks with us)."""
    x = exchange
    alice_id, frank_id = "a" * 64, "f" * 64
    now = x.clock.now
    x.service.process_bank([bank(x, "bank_customers", {
        **onboarded("alice", None, now - timedelta(days=400)), "identity_hash": alice_id})])
    code = x.service.referral_code("alice")
    x.service.process_bank([
        bank(x, "bank_customers", {**onboarded("alice-2", code, now), "identity_hash": alice_id}),
        bank(x, "bank_customers", {**onboarded("frank", code, now), "identity_hash": frank_id}),
    ])
    assert status_of(x, "alice-2") == [("refused", "self_referral_identity")]
    assert status_of(x, "frank") == [("signed_up", "signed_up")]
    later = now + timedelta(days=2)
    x.service.process_bank([bank(x, "bank_customers", {
        **onboarded("frank-2", code, later), "identity_hash": frank_id})])
    assert status_of(x, "frank-2") == [("refused", "already_a_customer")]
    (second,) = x.service.referrals_of("frank-2")
    assert "same identity as customer frank" in second.reason
    x.verify_clean()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_customers_with_a_profile_before_the_upgrade_are_known_to_the_guards(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Migration 0010 seeds known_customers from the earning pipeline's customer_profiles, so
    a customer the ledger knew before the upgrade, onboarded again with a code afterwards, is
    refused as already_a_customer; times with an offset compare by the instant, on SQLite
    too."""
    from points.db import make_engine
    from points.earning.tables import customer_profiles
    from points.exchange.tables import known_customers
    from points.migrate import upgrade
    from tests.integration.exchange.support import fresh_keys_env

    url = (f"sqlite:///{tmp_path / 'ledger.sqlite3'}" if dialect == "sqlite"
           else request.getfixturevalue("fresh_pg_url"))
    upgrade(url, "0009")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(customer_profiles.insert().values(
            customer_id="old-timer", referral_code=None,
            profile={"segment": "mass", "joined_at": "2024-02-01T08:00:00+08:00",
                     "status": "active", "birth_year": 1980}))
    upgrade(url)
    with engine.connect() as conn:
        (since,) = conn.execute(select(known_customers.c.known_since)).one()
    assert aware(since) == datetime(2024, 2, 1, tzinfo=UTC)
    x = Exchange(engine, Clock(), "t.", fresh_keys_env())
    code = x.service.referral_code("alice")
    x.service.process_bank([bank(x, "bank_customers", onboarded("old-timer", code, x.clock.now))])
    assert status_of(x, "old-timer") == [("refused", "already_a_customer")]
    # Offsets count (SQLite keeps wall times only): joined 08:30 in Shanghai is 00:30 UTC,
    # half an hour before an onboarding at 01:00 UTC.
    assert x.clock.now == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    x.service.process_bank([bank(x, "bank_customers", {
        "event_type": "customer_profile", "event_id": "prof-zoned", "customer_id": "zoned",
        "occurred_at": x.clock.now.isoformat(), "joined_at": "2026-03-02T08:30:00+08:00",
        "segment": "mass", "status": "active"})])
    x.service.process_bank([bank(x, "bank_customers", onboarded("zoned", code, x.clock.now))])
    assert status_of(x, "zoned") == [("refused", "already_a_customer")]
    engine.dispose()

"""``referrals list|show`` on SQLite and PostgreSQL: what the exchange decided about each
onboarding with a code, its state and reason, as operations see it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.config import load_partners_config, resolve_keys
from adapters.registry import build_registry
from adapters.topics import PartnerTopics
from points.decoding import RawMessage
from points.exchange import ExchangeService
from points.referrals import check_character
from points.settings import TopicNames
from tests.integration.cli.support import NOW, cli, cli_json, engine_for

TOPICS = TopicNames()
PARTNERS = load_partners_config()


@pytest.fixture
def exchange(migrated_url: str) -> Iterator[ExchangeService]:
    keys = {p.signing_keys[0].env: "11" * 32 for p in PARTNERS.partners.values()}
    registry = build_registry(PARTNERS, resolve_keys(PARTNERS, keys), PartnerTopics())
    with engine_for(migrated_url) as engine:
        yield ExchangeService(engine, registry, TOPICS, referral_secret=b"\x42" * 32,
                              zone=PARTNERS.zone, clock=lambda: NOW)


def message(offset: int, body: dict[str, object]) -> RawMessage:
    topic = TOPICS.bank_customers if "joined_at" in body else TOPICS.bank_transactions
    return RawMessage(topic, 0, offset, str(body["customer_id"]).encode(),
                      json.dumps(body).encode())


def onboarding(customer: str, code: str) -> dict[str, object]:
    return {"event_type": "customer_onboarded", "event_id": f"on-{customer}",
            "customer_id": customer, "occurred_at": NOW.isoformat(),
            "joined_at": NOW.isoformat(), "segment": "mass", "referral_code": code}


def day_of_referrals(exchange: ExchangeService) -> str:
    """alice refers bob (signed up); carl, a customer for a month, is refused as
    already_a_customer; dan's code is nobody's (unknown_code). Returns bob's referral id."""
    code = exchange.referral_code("alice")
    old_purchase = {"event_type": "purchase", "event_id": "old-carl", "customer_id": "carl",
                    "amount_minor": 900, "currency": "CNY", "mcc": "5411",
                    "merchant_id": "m-1", "channel": "card_present",
                    "occurred_at": (NOW - timedelta(days=30)).isoformat()}
    exchange.process_bank([message(1, old_purchase)])
    exchange.process_bank([
        message(2, onboarding("bob", code)), message(3, onboarding("carl", code)),
        message(4, onboarding("dan", "ABCDEFGH" + check_character("ABCDEFGH"))),
    ])
    (bob,) = exchange.referrals_of("bob")
    return bob.referral_id


def test_list_shows_every_onboarding_with_a_code_and_filters(
    migrated_url: str, exchange: ExchangeService
) -> None:
    """All three outcomes are listed (the unknown code with no referral id); --customer
    matches referrer or referee, --state and --reason filter; the reason code and the
    operator's detail are in the JSON."""
    day_of_referrals(exchange)
    every = cli_json(migrated_url, "referrals", "list")["referrals"]
    assert sorted((r["referee_id"], r["state"], r["reason_code"]) for r in every) == [
        ("bob", "signed_up", None), ("carl", "refused", "already_a_customer"),
        ("dan", "refused", "unknown_code")]
    by_referee = {r["referee_id"]: r for r in every}
    assert by_referee["dan"]["referral_id"] is None
    assert by_referee["dan"]["event_id"] == "on-dan"
    assert "purchase old-carl" in by_referee["carl"]["reason"]
    assert by_referee["carl"]["referrer"] == {"kind": "customer", "id": "alice"}
    mine = cli_json(migrated_url, "referrals", "list", "--customer", "alice")["referrals"]
    assert sorted(r["referee_id"] for r in mine) == ["bob", "carl"]
    refused = cli_json(migrated_url, "referrals", "list", "--state", "refused")["referrals"]
    assert sorted(r["referee_id"] for r in refused) == ["carl", "dan"]
    ring = cli_json(migrated_url, "referrals", "list", "--reason", "already_a_customer")
    assert [r["referee_id"] for r in ring["referrals"]] == ["carl"]
    unknown = cli_json(migrated_url, "referrals", "list", "--reason", "unknown_code")
    assert [r["referee_id"] for r in unknown["referrals"]] == ["dan"]
    signed = cli_json(migrated_url, "referrals", "list", "--state", "signed_up")["referrals"]
    assert [r["referee_id"] for r in signed] == ["bob"]
    table = cli(migrated_url, "referrals", "list")
    assert table.exit_code == 0 and "already_a_customer" in table.stdout


def test_show_gives_one_referral_with_its_recorded_refusal(
    migrated_url: str, exchange: ExchangeService
) -> None:
    """show REFERRAL_ID: the referral's fields, and for a refused one the refusals row."""
    bob_id = day_of_referrals(exchange)
    bob = cli_json(migrated_url, "referrals", "show", bob_id)
    assert (bob["state"], bob["referee_id"], bob["refusal"]) == ("signed_up", "bob", None)
    (carl_id,) = [r["referral_id"] for r in cli_json(
        migrated_url, "referrals", "list", "--customer", "carl")["referrals"]]
    carl = cli_json(migrated_url, "referrals", "show", carl_id)
    assert carl["refusal"]["reason_code"] == "already_a_customer"
    assert carl["refusal"]["event_id"] == "on-carl"
    assert cli(migrated_url, "referrals", "show", carl_id).exit_code == 0


def test_unknown_referral_and_bad_state_exit_with_their_codes(migrated_url: str) -> None:
    """An unknown id is not found (exit 3); a state that does not exist is a usage error
    (exit 2); both say why on stderr."""
    missing = cli(migrated_url, "referrals", "show", "ref:nope")
    assert missing.exit_code == 3 and "no referral with id" in missing.stderr
    bad = cli(migrated_url, "referrals", "list", "--state", "paid")
    assert bad.exit_code == 2 and "--state must be one of" in bad.stderr

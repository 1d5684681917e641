"""GET /v1/me/progress, /v1/me/referral and /v1/partners."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select

from adapters.config import resolve_keys
from adapters.registry import build_registry
from adapters.topics import PartnerTopics
from points.api.schemas import PartnerPrograms, Progress, Referral
from points.decoding import RawMessage
from points.exchange import ExchangeService
from points.referrals import is_valid_code
from points.settings import TopicNames

from .conftest import KEYS_ENV, NOW, PARTNERS, REFERRAL_SECRET, Api, assert_problem, build_app


def test_progress_shows_badges_streaks_challenges_and_milestones(api: Api) -> None:
    """Three check-in days, two categories this month, a first purchase: the streak is at
    3 of 7, the challenge at 2 of 3, first-swipe reached with its badge."""
    feed = api.feed
    api.earn([feed.check_in(f"c{d}", "alice", NOW - timedelta(days=d)) for d in (2, 1, 0)])
    api.earn([feed.purchase("p1", "alice", 5_000, mcc="5411"),
              feed.purchase("p2", "alice", 5_000, mcc="5812")])
    body = Progress.model_validate(api.get("/v1/me/progress").json())
    assert body.purchase_count == 2 and body.cumulative_spend_minor == 10_000
    assert [b.badge for b in body.badges] == ["first-swipe"]
    assert body.badges[0].rule_id == "first-swipe"
    (streak,) = body.streaks
    assert (streak.rule_id, streak.current, streak.length, streak.counted_this_period) == (
        "checkin-week", 3, 7, True)
    (challenge,) = body.challenges
    assert (challenge.period, challenge.target, challenge.categories_done) == (
        "2026-11", 3, ["dining", "groceries"])
    milestones = {m.rule_id: (m.current, m.reached) for m in body.milestones}
    assert milestones == {"first-swipe": (2, True), "big-spender": (10_000, False)}


def test_progress_of_a_new_customer_is_empty_but_lists_the_goals(api: Api) -> None:
    """No state yet: zero progress, every live goal listed."""
    body = api.get("/v1/me/progress").json()
    assert body["badges"] == [] and body["purchase_count"] == 0
    assert [s["current"] for s in body["streaks"]] == [0]
    assert [c["categories_done"] for c in body["challenges"]] == [[]]


def test_a_broken_streak_shows_zero(api: Api) -> None:
    """Check-ins five and four days ago, none since: the run is over."""
    api.earn([api.feed.check_in(f"c{d}", "alice", NOW - timedelta(days=d)) for d in (5, 4)])
    (streak,) = api.get("/v1/me/progress").json()["streaks"]
    assert (streak["current"], streak["counted_this_period"]) == (0, False)


def exchange_on(api: Api) -> ExchangeService:
    """The partner worker's service on the API's database, with the secret the partner
    worker reads (POINTS_REFERRAL_SECRET, hex-decoded)."""
    registry = build_registry(PARTNERS, resolve_keys(PARTNERS, KEYS_ENV), PartnerTopics())
    return ExchangeService(api.engine, registry, TopicNames(),
                           referral_secret=bytes.fromhex(REFERRAL_SECRET),
                           zone=PARTNERS.zone, clock=api.clock)


def onboarding(api: Api, customer: str, code: str, *, event_id: str | None = None,
               joined_at: datetime = NOW, identity_hash: str | None = None) -> RawMessage:
    body: dict[str, object] = {
        "event_type": "customer_onboarded", "event_id": event_id or f"on-{customer}",
        "customer_id": customer, "occurred_at": joined_at.isoformat(),
        "joined_at": joined_at.isoformat(), "segment": "mass", "referral_code": code}
    if identity_hash is not None:
        body["identity_hash"] = identity_hash
    return api.feed.raw(TopicNames().bank_customers, body)


def test_referral_code_is_stored_when_shown_and_never_changes(api: Api) -> None:
    """The first GET stores the code it shows; later GETs, and the partner worker's service
    (same hex secret), give that very code; customers' codes differ."""
    from points.exchange.tables import referral_codes

    alice = Referral.model_validate(api.get("/v1/me/referral").json())
    bob = Referral.model_validate(api.get("/v1/me/referral", sub="bob").json())
    assert is_valid_code(alice.code) and alice.code != bob.code
    with api.engine.connect() as conn:
        stored: dict[str, str] = dict(conn.execute(
            select(referral_codes.c.owner_id, referral_codes.c.code)).tuples().all())
    assert stored == {"alice": alice.code, "bob": bob.code}
    assert exchange_on(api).referral_code("alice") == alice.code
    assert api.get("/v1/me/referral").json()["code"] == alice.code
    assert alice.referred == [] and alice.rewarded_count == 0 and alice.referred_by is None
    assert alice.referrals == [] and alice.own_referral is None


def test_the_code_shown_signs_up_the_friend_who_onboards_with_it(api: Api) -> None:
    """carol onboards on bank.customers with the code alice's app showed: a signed-up
    referral that alice sees in her list and carol as her own; a code nobody was shown is a
    refusal (unknown_code) that the onboarded customer sees with its reason."""
    code = api.get("/v1/me/referral").json()["code"]
    service = exchange_on(api)
    outcomes = service.process_bank([onboarding(api, "carol", code)])
    assert outcomes == {"signup:signed_up": 1}
    alice = api.get("/v1/me/referral").json()
    (item,) = alice["referrals"]
    assert (item["state"], item["reason_code"], item["points"]) == ("signed_up", None, 0)
    assert alice["referred"] == [{"status": "signed_up", "count": 1}]
    carol = api.get("/v1/me/referral", sub="carol").json()
    assert carol["own_referral"]["referral_id"] == item["referral_id"]
    assert carol["referred_by"] == "signed_up"

    stranger = "Q" + code[1:-1]
    stranger += referral_check(stranger)
    assert service.process_bank([onboarding(api, "dave", stranger)]) == {
        "signup:unknown_code": 1}
    dave = api.get("/v1/me/referral", sub="dave").json()
    assert dave["own_referral"] == {
        "referral_id": None, "state": "refused", "reason_code": "unknown_code",
        "reason": "The referral code does not belong to any customer or partner.",
        "signed_up_at": None, "qualify_by": None, "qualified_at": None, "points": 0}
    assert dave["referred_by"] is None


def test_a_refused_referral_shows_its_reason_to_both_customers(api: Api) -> None:
    """erin was a customer (a profile from 2025) before onboarding with alice's code:
    refused already_a_customer; alice's list and erin's own referral say so in words."""
    code = api.get("/v1/me/referral").json()["code"]
    service = exchange_on(api)
    service.process_bank([api.feed.profile("erin")])
    service.process_bank([onboarding(api, "erin", code)])
    (item,) = api.get("/v1/me/referral").json()["referrals"]
    assert (item["state"], item["reason_code"]) == ("refused", "already_a_customer")
    assert item["reason"] == "The new account's owner was already a customer of the bank."
    erin = api.get("/v1/me/referral", sub="erin").json()["own_referral"]
    assert (erin["state"], erin["reason_code"]) == ("refused", "already_a_customer")


def referral_check(body: str) -> str:
    from points.referrals import check_character

    return check_character(body)


def test_referral_status_counts_the_customers_referrals(api: Api) -> None:
    """Rows in the exchange's referral tables show up as counts by status, and a stored
    code (after a collision) wins over the computed one."""
    from points.exchange.tables import referral_codes, referrals

    def referral(rid: str, referrer: str, referee: str, status: str) -> dict[str, object]:
        return {"referral_id": rid, "origin": "customer_invite", "referrer_kind": "customer",
                "referrer_id": referrer, "referee_id": referee, "status": status,
                "reason": "", "invited_at": NOW, "rewards": [], "updated_at": NOW}

    with api.engine.begin() as conn:
        conn.execute(insert(referral_codes).values(
            code="STOREDXX9", owner_kind="customer", owner_id="alice", created_at=NOW))
        conn.execute(insert(referrals), [
            referral("r1", "alice", "friend-1", "rewarded"),
            referral("r2", "alice", "friend-2", "rewarded"),
            referral("r3", "alice", "friend-3", "signed_up"),
            referral("r4", "zed", "alice", "qualified"),
        ])
    body = api.get("/v1/me/referral").json()
    assert body["code"] == "STOREDXX9"
    assert body["referred"] == [{"status": "rewarded", "count": 2},
                                {"status": "signed_up", "count": 1}]
    assert (body["rewarded_count"], body["referred_by"]) == (2, "qualified")
    assert api.get("/v1/me/referral", sub="friend-3").json()["referred"] == []


def test_referral_without_a_secret_is_not_configured(api: Api, migrated_url: str) -> None:
    """No referral secret in the settings: 503 problem, not a made-up code."""
    from .conftest import TestClient, bearer

    app = build_app(migrated_url, api.engine, referral_secret=None)
    with TestClient(app) as client:
        assert_problem(client.get("/v1/me/referral", headers=bearer()), 503, "not_configured")


def test_partners_lists_rates_fees_and_limits_from_the_configuration(api: Api) -> None:
    """The three configured programs with their numbers, straight from partners.yaml."""
    body = PartnerPrograms.model_validate(api.get("/v1/partners").json())
    by_id = {p.id: p for p in body.partners}
    assert set(by_id) == {"ridehail", "eshop", "airline"}
    eshop = by_id["eshop"]
    assert (eshop.outbound_rate_num, eshop.outbound_rate_den) == (1, 5)
    assert (eshop.fee_rate_bp, eshop.fee_min_points, eshop.fee_max_points) == (100, 10, 500)
    assert (eshop.daily_limit_points, eshop.yearly_limit_points) == (100_000, 3_000_000)
    assert by_id["airline"].inbound_enabled is False
    assert by_id["airline"].inbound_rate_num is None
    assert body.timezone == "Asia/Shanghai"

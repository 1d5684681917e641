"""Referral codes, the referral lifecycle, its guards (each with its refusal reason),
rewards on both sides, ambassador tiers and clawback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from points import referrals as r
from points.referrals import (
    ALPHABET,
    ClawBackRewards,
    GrantRewards,
    Ignored,
    IgnoreReason,
    InvalidReferralCode,
    Origin,
    Party,
    QualifyingTransaction,
    Referral,
    ReferralPolicy,
    ReferralStatus,
    RefusalReason,
    Reward,
    SignupFacts,
    Transition,
)

NOW = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
SECRET = b"s" * 32
POLICY = ReferralPolicy()
ALICE = Party("customer", "alice", identity_hash="id-alice")
BOB = Party("customer", "bob", identity_hash="id-bob")
CLEAN = SignupFacts(referee_referred_by=None, referrer_signups_this_month=0,
                    referrer_signups_last_hour=0)

# ----------------------------------------------------------------------------------- codes


def test_a_customers_code_is_deterministic_unambiguous_and_checksummed() -> None:
    """Same customer and secret, same code: 8 characters from an alphabet without 0/O/1/I/L/U
    plus a check character, valid as a bank.customers referral_code."""
    code = r.referral_code("alice", SECRET)
    assert code == r.referral_code("alice", SECRET)
    assert len(code) == 9 and set(code) <= set(ALPHABET)
    assert not set("0O1ILU") & set(ALPHABET)
    assert r.is_valid_code(code)


def test_codes_differ_by_customer_secret_and_attempt() -> None:
    """Codes are unguessable without the secret; a collision is resolved with attempt + 1."""
    codes = {
        r.referral_code("alice", SECRET),
        r.referral_code("bob", SECRET),
        r.referral_code("alice", b"t" * 32),
        r.referral_code("alice", SECRET, attempt=1),
    }
    assert len(codes) == 4


def test_every_single_character_typo_is_detected() -> None:
    """Luhn mod 30: replacing any one character of a code by any other makes it invalid."""
    code = r.referral_code("alice", SECRET)
    for position in range(len(code)):
        for ch in ALPHABET:
            if ch != code[position]:
                typo = code[:position] + ch + code[position + 1 :]
                assert not r.is_valid_code(typo), typo


def test_typed_codes_are_normalised_and_garbage_is_refused() -> None:
    """Lower case, spaces and hyphens are accepted; ambiguous characters or a bad checksum
    raise InvalidReferralCode (code invalid_referral_code)."""
    code = r.referral_code("alice", SECRET)
    assert r.normalise_code(f" {code[:4].lower()}-{code[4:]} ") == code
    for bad in ("O" + code[1:], code[:-1], code[:-1] + ("2" if code[-1] != "2" else "3")):
        with pytest.raises(InvalidReferralCode) as caught:
            r.normalise_code(bad)
        assert caught.value.code == "invalid_referral_code"


# ----------------------------------------------------------------------------------- helpers


def invited(referrer: Party = ALICE, origin: Origin = Origin.CUSTOMER_INVITE) -> Referral:
    partner_id = None if origin is Origin.CUSTOMER_INVITE else "ridehail"
    return r.invite(
        referral_id="ref-1",
        origin=origin,
        referrer=referrer,
        now=NOW,
        code=r.referral_code(referrer.id, SECRET),
        partner_id=partner_id,
    )


def signed_up(referrer: Party = ALICE, origin: Origin = Origin.CUSTOMER_INVITE) -> Referral:
    result = r.sign_up(invited(referrer, origin), BOB, CLEAN, POLICY, NOW + timedelta(hours=1))
    assert isinstance(result, Transition)
    return result.referral


def txn(event_id: str = "tx-1", amount_minor: int = 50_00, days: int = 2,
        customer_id: str = "bob") -> QualifyingTransaction:
    return QualifyingTransaction(event_id, customer_id, amount_minor, NOW + timedelta(days=days))


def qualified(referrer: Party = ALICE, rewarded_before: int = 0,
              origin: Origin = Origin.CUSTOMER_INVITE) -> Transition:
    result = r.qualify(signed_up(referrer, origin), txn(), POLICY,
                       referrer_rewarded_before=rewarded_before)
    assert isinstance(result, Transition)
    return result


# ------------------------------------------------------------------------------------ guards


@pytest.mark.parametrize(
    ("referee", "facts", "reason"),
    [
        (Party("customer", "alice"), CLEAN, RefusalReason.SELF_REFERRAL),
        (Party("customer", "alice-2", identity_hash="id-alice"), CLEAN,
         RefusalReason.SELF_REFERRAL_IDENTITY),
        (BOB, SignupFacts("ref-0", 0, 0), RefusalReason.ALREADY_REFERRED),
        (BOB, SignupFacts(None, 20, 0), RefusalReason.MONTHLY_CAP_REACHED),
        (BOB, SignupFacts(None, 3, 5), RefusalReason.VELOCITY_LIMIT),
    ],
)
def test_each_guard_refuses_with_its_recorded_reason(
    referee: Party, facts: SignupFacts, reason: RefusalReason
) -> None:
    """Self-referral (same id or same identity), a second referrer, the monthly cap (20) and
    the hourly velocity limit (5) each refuse the sign-up; the reason is kept on the referral
    and nothing is paid."""
    result = r.sign_up(invited(), referee, facts, POLICY, NOW)
    assert isinstance(result, Transition)
    assert result.referral.status is ReferralStatus.REFUSED
    assert result.reason == reason.value
    assert result.referral.reason.startswith(f"{reason.value}: ")
    assert result.action == r.NoLedgerAction()


def test_the_refusal_reasons_are_stable_codes() -> None:
    """Reports and the app show these codes; renaming one is a breaking change."""
    assert [x.value for x in RefusalReason] == [
        "self_referral", "self_referral_identity", "already_referred", "monthly_cap_reached",
        "velocity_limit", "window_passed", "referral_ring", "already_a_customer",
        "unknown_code", "invalid_code",
    ]


def test_every_refusal_reason_has_words_for_the_customer() -> None:
    """The app shows REFUSAL_TEXT[code]: every code has a sentence, and none names anyone."""
    for reason in RefusalReason:
        text = r.REFUSAL_TEXT[reason]
        assert text.endswith(".") and "{" not in text
    assert "qualifying_purchase_refunded" in r.REFUSAL_TEXT


# ------------------------------------------------------------------------- fraud guards

JOINED = NOW - timedelta(minutes=5)


def history(customer_id: str, minutes_before_joining: int) -> r.CustomerHistory:
    return r.CustomerHistory(customer_id, JOINED - timedelta(minutes=minutes_before_joining),
                             f"customer_profile p-{customer_id}")


def test_a_second_account_of_the_referrer_is_refused_by_identity_hash() -> None:
    """bob-2 has another customer id but the identity hash alice's onboarding carried: the
    same person, refused as self_referral_identity."""
    same_person = Party("customer", "bob-2", identity_hash="id-alice")
    result = r.sign_up(invited(), same_person, CLEAN, POLICY, NOW)
    assert isinstance(result, Transition)
    assert result.reason == "self_referral_identity"
    assert "bob-2" in result.referral.reason and "alice" in result.referral.reason


def test_a_referee_in_the_referrers_chain_closes_a_ring_and_is_refused() -> None:
    """A referred B, B referred C; C's code used by A (A->B->C->A): referral_ring, with the
    chain in the reason. A referee outside the chain passes."""
    carol = Party("customer", "carol")
    ring = r.sign_up(invited(carol), Party("customer", "alice"),
                     SignupFacts(None, 0, 0, referrer_chain=("bob", "alice")), POLICY, NOW)
    assert isinstance(ring, Transition) and ring.reason == "referral_ring"
    assert ring.referral.reason == "referral_ring: alice is in the referrer's chain " \
                                   "carol <- bob <- alice"
    fine = r.sign_up(invited(carol), Party("customer", "dave"),
                     SignupFacts(None, 0, 0, referrer_chain=("bob", "alice")), POLICY, NOW)
    assert isinstance(fine, Transition) and fine.reason == "signed_up"


@pytest.mark.parametrize(
    ("facts", "refused"),
    [
        (SignupFacts(None, 0, 0, joined_at=JOINED, referee_history=history("bob", 60 * 24)),
         True),
        (SignupFacts(None, 0, 0, joined_at=JOINED, referee_history=history("bob", 0)), False),
        (SignupFacts(None, 0, 0, joined_at=JOINED, referee_history=history("bob", -10)), False),
        (SignupFacts(None, 0, 0, joined_at=JOINED, same_identity=(history("bob-old", 90),)),
         True),
        (SignupFacts(None, 0, 0, joined_at=JOINED, same_identity=(history("bob-new", -1),)),
         False),
        (SignupFacts(None, 0, 0, joined_at=None, referee_history=history("bob", 60)), False),
    ],
    ids=["known-a-day-before", "own-onboarding", "purchase-after-joining",
         "other-account-same-identity", "other-account-opened-after", "no-joining-time"],
)
def test_already_a_customer_needs_evidence_from_before_joining(
    facts: SignupFacts, refused: bool
) -> None:
    """already_a_customer fires when the referee's id, or another account with their identity
    hash, was known strictly before the onboarding's joined_at; the onboarding's own evidence
    (known since joined_at) and later purchases do not count; without a joining time (a
    customer joining a partner program) the guard does not apply."""
    result = r.sign_up(invited(), BOB, facts, POLICY, NOW)
    assert isinstance(result, Transition)
    assert result.reason == ("already_a_customer" if refused else "signed_up")
    if refused:
        assert result.referral.status is ReferralStatus.REFUSED
        assert "before joining" in result.referral.reason or "same identity" in \
            result.referral.reason


def test_guards_are_checked_in_their_documented_order() -> None:
    """When several guards apply the first documented one names the refusal: self_referral,
    self_referral_identity, referral_ring, already_referred, already_a_customer, caps."""
    everything = SignupFacts("ref-0", 99, 99, referrer_chain=("bob",), joined_at=JOINED,
                             referee_history=history("bob", 60))
    order = []
    facts = everything
    referee = Party("customer", "bob", identity_hash="id-alice")
    for _ in range(6):
        result = r.sign_up(invited(), referee, facts, POLICY, NOW)
        assert isinstance(result, Transition)
        order.append(result.reason)
        if result.reason == "self_referral_identity":
            referee = BOB
        elif result.reason == "referral_ring":
            facts = SignupFacts("ref-0", 99, 99, joined_at=JOINED,
                                referee_history=history("bob", 60))
        elif result.reason == "already_referred":
            facts = SignupFacts(None, 99, 99, joined_at=JOINED,
                                referee_history=history("bob", 60))
        elif result.reason == "already_a_customer":
            facts = SignupFacts(None, 99, 99)
        elif result.reason == "monthly_cap_reached":
            facts = SignupFacts(None, 0, 0)
    assert order == ["self_referral_identity", "referral_ring", "already_referred",
                     "already_a_customer", "monthly_cap_reached", "signed_up"]


def test_the_referral_secret_is_hex_and_long_enough() -> None:
    """parse_secret is the one decoding of POINTS_REFERRAL_SECRET: hex of at least 16 bytes;
    anything else raises a ValueError that names the variable, not the value."""
    assert r.parse_secret(" " + "ab" * 16 + "\n") == b"\xab" * 16
    for bad in ("referral-secret-for-tests", "ab" * 15, "abc"):
        with pytest.raises(ValueError, match="POINTS_REFERRAL_SECRET") as caught:
            r.parse_secret(bad)
        assert bad not in str(caught.value)


def test_reason_codes_of_refused_and_clawed_back_referrals() -> None:
    """reason_code_of: the code before the colon of a refusal, qualifying_purchase_refunded
    for a clawback, None for a referral in good standing."""
    refused = r.sign_up(invited(), Party("customer", "alice"), CLEAN, POLICY, NOW)
    assert r.reason_code_of(refused.referral) == "self_referral"
    assert r.reason_code_of(signed_up()) is None
    clawed = r.refund(qualified().referral, "tx-1", NOW + timedelta(days=3), POLICY)
    assert isinstance(clawed, Transition)
    assert r.reason_code_of(clawed.referral) == "qualifying_purchase_refunded"


def test_a_referee_already_owned_by_this_same_referral_is_not_a_second_referrer() -> None:
    """Replaying the sign-up (the referee row already points at this referral) passes."""
    result = r.sign_up(invited(), BOB, SignupFacts("ref-1", 0, 0), POLICY, NOW)
    assert isinstance(result, Transition)
    assert result.referral.status is ReferralStatus.SIGNED_UP


def test_just_under_the_caps_a_sign_up_passes_and_opens_the_window() -> None:
    """19 sign-ups this month and 4 this hour still allow one more; the qualification window
    (30 days) starts at sign-up."""
    at = NOW + timedelta(hours=2)
    result = r.sign_up(invited(), BOB, SignupFacts(None, 19, 4), POLICY, at)
    assert isinstance(result, Transition)
    assert result.referral.status is ReferralStatus.SIGNED_UP
    assert result.referral.qualify_by == at + timedelta(days=30)
    assert result.referral.referee == BOB


def test_partner_referrers_are_bound_by_contract_not_by_customer_caps() -> None:
    """A partner referring many members is not capped like a customer."""
    partner = Party("partner", "ridehail")
    result = r.sign_up(
        invited(partner, Origin.PARTNER_MEMBER), BOB, SignupFacts(None, 500, 50), POLICY, NOW
    )
    assert isinstance(result, Transition)
    assert result.referral.status is ReferralStatus.SIGNED_UP


def test_signing_up_twice_is_ignored() -> None:
    """A duplicate sign-up message does not move a referral past invited twice."""
    result = r.sign_up(signed_up(), BOB, CLEAN, POLICY, NOW)
    assert isinstance(result, Ignored) and result.reason is IgnoreReason.NOT_INVITED


def test_invites_need_a_valid_code_and_cross_referrals_a_partner() -> None:
    """A malformed code or a partner referral without its partner is a caller error."""
    with pytest.raises(InvalidReferralCode):
        r.invite(referral_id="x", origin=Origin.CUSTOMER_INVITE, referrer=ALICE, now=NOW,
                 code="ABCDEFGHJ")
    with pytest.raises(ValueError):
        r.invite(referral_id="x", origin=Origin.PARTNER_JOIN, referrer=ALICE, now=NOW)


# ----------------------------------------------------------------------------- qualification


def test_the_first_qualifying_transaction_rewards_both_sides() -> None:
    """Referee and referrer get points (idempotent keys per referral and role); the first
    rewarded referral also earns the ambassador bonus."""
    result = qualified()
    assert result.referral.status is ReferralStatus.QUALIFIED
    assert result.referral.qualifying_event_id == "tx-1"
    assert result.action == GrantRewards((
        Reward("referral:ref-1:referee", "referee", BOB, points=500),
        Reward("referral:ref-1:referrer", "referrer", ALICE, points=500),
        Reward("referral:ref-1:ambassador-1", "ambassador", ALICE, points=200),
    ))


@pytest.mark.parametrize(("rewarded_before", "bonus"), [(0, 200), (1, None), (4, 1_000),
                                                         (9, 3_000), (10, None)])
def test_ambassador_tiers_pay_on_the_1st_5th_and_10th_referral(
    rewarded_before: int, bonus: int | None
) -> None:
    """Repeat referrers get a bonus exactly when their 1st, 5th and 10th referral qualifies."""
    action = qualified(rewarded_before=rewarded_before).action
    assert isinstance(action, GrantRewards)
    bonuses = [x.points for x in action.rewards if x.role == "ambassador"]
    assert bonuses == ([] if bonus is None else [bonus])


@pytest.mark.parametrize(
    ("referrer", "origin", "fee_minor"),
    [
        (Party("partner", "ridehail"), Origin.PARTNER_MEMBER, 20_00),
        (Party("bank", "bank"), Origin.PARTNER_JOIN, 10_00),
    ],
)
def test_cross_referrals_pay_the_referring_organisation_a_fee(
    referrer: Party, origin: Origin, fee_minor: int
) -> None:
    """Partner-originated: the bank pays the partner; bank-originated (customer joins the
    partner from the app): the partner pays the bank. The referee gets points either way."""
    action = qualified(referrer, origin=origin).action
    assert isinstance(action, GrantRewards)
    assert action.rewards == (
        Reward("referral:ref-1:referee", "referee", BOB, points=500),
        Reward("referral:ref-1:referrer", "referrer", referrer, amount_minor=fee_minor),
    )


@pytest.mark.parametrize(
    ("transaction", "reason"),
    [
        (txn(amount_minor=9_99), IgnoreReason.BELOW_QUALIFYING_AMOUNT),
        (txn(customer_id="carol"), IgnoreReason.NOT_THE_REFEREE),
    ],
)
def test_small_or_foreign_transactions_do_not_qualify_and_keep_the_window_open(
    transaction: QualifyingTransaction, reason: IgnoreReason
) -> None:
    """Under 10 CNY, or someone else's transaction: ignored, the next one may still qualify."""
    result = r.qualify(signed_up(), transaction, POLICY, referrer_rewarded_before=0)
    assert isinstance(result, Ignored) and result.reason is reason
    assert result.referral.status is ReferralStatus.SIGNED_UP


def test_a_first_transaction_after_the_window_refuses_the_referral() -> None:
    """Qualification must happen within 30 days of sign-up."""
    result = r.qualify(signed_up(), txn(days=40), POLICY, referrer_rewarded_before=0)
    assert isinstance(result, Transition)
    assert result.referral.status is ReferralStatus.REFUSED
    assert result.reason == "window_passed"


def test_qualifying_twice_is_ignored() -> None:
    """A second purchase (or a replayed one) does not pay again."""
    result = r.qualify(qualified().referral, txn("tx-2"), POLICY, referrer_rewarded_before=1)
    assert isinstance(result, Ignored)
    assert result.reason is IgnoreReason.NOT_AWAITING_QUALIFICATION


def test_the_window_timer_refuses_referrals_that_never_qualified() -> None:
    """After the window a signed-up referral is refused (window_passed); before, nothing."""
    referral = signed_up()
    assert referral.qualify_by is not None
    early = r.expire(referral, referral.qualify_by)
    assert isinstance(early, Ignored) and early.reason is IgnoreReason.WINDOW_OPEN
    late = r.expire(referral, referral.qualify_by + timedelta(seconds=1))
    assert isinstance(late, Transition) and late.referral.status is ReferralStatus.REFUSED
    again = r.expire(late.referral, NOW + timedelta(days=90))
    assert isinstance(again, Ignored)


def test_rewards_granted_marks_rewarded_once() -> None:
    """Once the ledger committed the rewards the referral is rewarded; repeating is ignored."""
    done = r.rewards_granted(qualified().referral, NOW + timedelta(days=2))
    assert isinstance(done, Transition) and done.referral.status is ReferralStatus.REWARDED
    again = r.rewards_granted(done.referral, NOW + timedelta(days=2))
    assert isinstance(again, Ignored) and again.reason is IgnoreReason.NOT_QUALIFIED


# --------------------------------------------------------------------------------- clawback


def rewarded() -> Referral:
    result = r.rewards_granted(qualified().referral, NOW + timedelta(days=2))
    assert isinstance(result, Transition)
    return result.referral


def test_refunding_the_qualifying_purchase_within_the_window_claws_back_every_reward() -> None:
    """Both sides' rewards and the ambassador bonus are reversed, each with its own key."""
    result = r.refund(rewarded(), "tx-1", NOW + timedelta(days=10), POLICY)
    assert isinstance(result, Transition)
    assert result.referral.status is ReferralStatus.CLAWED_BACK
    keys = ("referral:ref-1:referee", "referral:ref-1:referrer", "referral:ref-1:ambassador-1")
    assert result.action == ClawBackRewards(keys, tuple(f"{k}:clawback" for k in keys))


@pytest.mark.parametrize(
    ("event_id", "days", "reason"),
    [
        ("tx-other", 10, IgnoreReason.NOT_THE_QUALIFYING_EVENT),
        ("tx-1", 33, IgnoreReason.CLAWBACK_WINDOW_PASSED),
    ],
)
def test_other_refunds_or_late_refunds_do_not_claw_back(
    event_id: str, days: int, reason: IgnoreReason
) -> None:
    """Only the qualifying purchase, and only within 30 days of qualifying (day 2 + 30)."""
    result = r.refund(rewarded(), event_id, NOW + timedelta(days=days), POLICY)
    assert isinstance(result, Ignored) and result.reason is reason


def test_a_refund_before_qualification_or_after_clawback_changes_nothing() -> None:
    """Nothing was paid (or it was already taken back): nothing to claw back."""
    assert isinstance(r.refund(signed_up(), "tx-1", NOW, POLICY), Ignored)
    clawed = r.refund(rewarded(), "tx-1", NOW + timedelta(days=3), POLICY)
    assert isinstance(clawed, Transition)
    again = r.refund(clawed.referral, "tx-1", NOW + timedelta(days=4), POLICY)
    assert isinstance(again, Ignored) and again.reason is IgnoreReason.NOT_QUALIFIED

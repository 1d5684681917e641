"""Referrals between customers, and between the bank and its partners: codes, lifecycle, guards.

Standard library only. Like :mod:`points.swap_saga`, every step is a pure function returning the
new state, the ledger action to apply in the same transaction, and the recorded reason.

Origins:

- ``customer_invite``  a customer invites a friend to the bank with their referral code
- ``partner_join``     bank-originated cross-referral: a customer joins a partner program from
                       the app (referrer: the bank; the partner pays a referral fee)
- ``partner_member``   partner-originated: a partner's member opens a bank account through the
                       partner's offer (referrer: the partner, or a customer whose code the
                       member used in the partner's app)

Lifecycle::

    invited -> signed_up -> qualified -> rewarded -> clawed_back
         \\-> refused(reason)  \\-> refused(window_passed)   \\-> clawed_back

``sign_up`` applies the guards (self-referral by id or identity hash, a referral ring, one
referrer per referee, a referee who was already a customer, monthly cap and hourly velocity per
referrer) and refuses with a recorded reason (:data:`REFUSAL_TEXT` says each to a customer).
The referee's first *qualifying* transaction inside the window qualifies the referral and
grants rewards on both sides, plus an ambassador bonus on the referrer's 1st, 5th and 10th
rewarded referral. A refund of that transaction inside the clawback window claws every reward
back.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Final, Literal, TypeAlias

from points.errors import PointsError

__all__ = [
    "ALPHABET",
    "CODE_BODY_LENGTH",
    "REFUSAL_TEXT",
    "ClawBackRewards",
    "CustomerHistory",
    "GrantRewards",
    "IgnoreReason",
    "Ignored",
    "InvalidReferralCode",
    "NoLedgerAction",
    "Origin",
    "Party",
    "QualifyingTransaction",
    "Referral",
    "ReferralError",
    "ReferralPolicy",
    "ReferralStatus",
    "RefusalReason",
    "Reward",
    "SignupFacts",
    "Transition",
    "check_character",
    "expire",
    "invite",
    "is_valid_code",
    "normalise_code",
    "parse_secret",
    "qualify",
    "reason_code_of",
    "referral_code",
    "refund",
    "rewards_granted",
    "sign_up",
]

# --------------------------------------------------------------------------------------- codes

ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
"""30 characters: no 0/O, 1/I/L, and no U (avoids accidental words). Upper case only."""
CODE_BODY_LENGTH: Final = 8
"""30**8 ~ 6.6e11 codes; the last character is a check character (Luhn mod 30)."""
_INDEX: Final = {ch: i for i, ch in enumerate(ALPHABET)}


class ReferralError(PointsError):
    code: ClassVar[str] = "referral_error"


class InvalidReferralCode(ReferralError):
    code = "invalid_referral_code"


def check_character(body: str) -> str:
    """Luhn mod N check character: catches every single-character error and most swaps of
    adjacent characters, the two typos people make copying a code."""
    n = len(ALPHABET)
    factor, total = 2, 0
    for ch in reversed(body):
        addend = factor * _INDEX[ch]
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return ALPHABET[(n - total % n) % n]


def referral_code(customer_id: str, secret: bytes, *, attempt: int = 0) -> str:
    """The customer's code: deterministic from the id, unguessable without ``secret``.

    Codes are short, so two customers may collide; the code table's unique constraint detects
    it and the caller retries with ``attempt + 1``.
    """
    if not customer_id or attempt < 0:
        raise ValueError("need a customer id and attempt >= 0")
    digest = hmac.new(secret, f"{customer_id}\x1f{attempt}".encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest, "big")
    body = []
    for _ in range(CODE_BODY_LENGTH):
        value, index = divmod(value, len(ALPHABET))
        body.append(ALPHABET[index])
    text = "".join(body)
    return text + check_character(text)


SECRET_BYTES_MIN: Final = 16


def parse_secret(text: str, *, name: str = "POINTS_REFERRAL_SECRET") -> bytes:
    """The referral secret from its hex text (``secrets.token_hex(32)``), the one decoding the
    API and the workers share, so a code minted by one is the code the other mints.

    Raises ``ValueError`` naming the variable for text that is not hex or is too short to keep
    codes unguessable."""
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError(
            f"{name} must be hex (e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        ) from None
    if len(secret) < SECRET_BYTES_MIN:
        raise ValueError(f"{name} must be at least {SECRET_BYTES_MIN} bytes "
                         f"({2 * SECRET_BYTES_MIN} hex digits)")
    return secret


def normalise_code(text: str) -> str:
    """Upper-case and drop the spaces and hyphens people type; raise if it cannot be a code."""
    code = text.strip().upper().replace("-", "").replace(" ", "")
    if not is_valid_code(code):
        raise InvalidReferralCode(f"{text!r} is not a referral code")
    return code


def is_valid_code(code: str) -> bool:
    if len(code) != CODE_BODY_LENGTH + 1 or any(ch not in _INDEX for ch in code):
        return False
    return check_character(code[:-1]) == code[-1]


# --------------------------------------------------------------------------------------- model


class Origin(StrEnum):
    CUSTOMER_INVITE = "customer_invite"
    PARTNER_JOIN = "partner_join"
    PARTNER_MEMBER = "partner_member"


class ReferralStatus(StrEnum):
    INVITED = "invited"
    SIGNED_UP = "signed_up"
    QUALIFIED = "qualified"
    REWARDED = "rewarded"
    REFUSED = "refused"
    CLAWED_BACK = "clawed_back"


class RefusalReason(StrEnum):
    SELF_REFERRAL = "self_referral"
    SELF_REFERRAL_IDENTITY = "self_referral_identity"
    ALREADY_REFERRED = "already_referred"
    MONTHLY_CAP_REACHED = "monthly_cap_reached"
    VELOCITY_LIMIT = "velocity_limit"
    WINDOW_PASSED = "window_passed"
    REFERRAL_RING = "referral_ring"
    ALREADY_A_CUSTOMER = "already_a_customer"
    UNKNOWN_CODE = "unknown_code"
    """No customer or partner owns the code (never shown by the app, or mistyped)."""
    INVALID_CODE = "invalid_code"
    """The code cannot be one of ours: wrong length, characters or check character."""


REFUSAL_TEXT: Final[dict[str, str]] = {
    RefusalReason.SELF_REFERRAL: "A customer cannot use their own referral code.",
    RefusalReason.SELF_REFERRAL_IDENTITY: (
        "The new account belongs to the same person as the referrer."),
    RefusalReason.ALREADY_REFERRED: "The new customer was already referred by someone else.",
    RefusalReason.MONTHLY_CAP_REACHED: (
        "The referrer has reached this month's limit of referrals."),
    RefusalReason.VELOCITY_LIMIT: "The referrer made too many referrals in the last hour.",
    RefusalReason.WINDOW_PASSED: (
        "The new customer made no qualifying purchase within the referral window."),
    RefusalReason.REFERRAL_RING: (
        "The new customer had already referred the referrer, directly or through others."),
    RefusalReason.ALREADY_A_CUSTOMER: (
        "The new account's owner was already a customer of the bank."),
    RefusalReason.UNKNOWN_CODE: "The referral code does not belong to any customer or partner.",
    RefusalReason.INVALID_CODE: "The referral code is not valid (check it for a typo).",
    "qualifying_purchase_refunded": (
        "The qualifying purchase was refunded, so the rewards were taken back."),
}
"""What the customer is told for each reason code (no other customer's data in it)."""


class IgnoreReason(StrEnum):
    NOT_INVITED = "not_invited"
    NOT_AWAITING_QUALIFICATION = "not_awaiting_qualification"
    NOT_THE_REFEREE = "not_the_referee"
    BELOW_QUALIFYING_AMOUNT = "below_qualifying_amount"
    NOT_QUALIFIED = "not_qualified"
    NOT_THE_QUALIFYING_EVENT = "not_the_qualifying_event"
    CLAWBACK_WINDOW_PASSED = "clawback_window_passed"
    WINDOW_OPEN = "window_open"


PartyKind: TypeAlias = Literal["customer", "partner", "bank"]


@dataclass(frozen=True, slots=True)
class Party:
    """Who refers or is referred. ``identity_hash`` is a keyed hash of the person's national id
    (or phone) computed by the bank, so two customer ids of one person are recognised."""

    kind: PartyKind
    id: str
    identity_hash: str | None = None


@dataclass(frozen=True, slots=True)
class ReferralPolicy:
    """Amounts are bank points unless named ``_minor`` (currency minor units)."""

    qualify_window: timedelta = timedelta(days=30)
    qualifying_amount_min_minor: int = 10_00
    referee_points: int = 500
    referrer_points: int = 500
    partner_fee_minor: int = 20_00
    """What the bank pays a partner for a member who qualifies (partner_member origin)."""
    bank_fee_minor: int = 10_00
    """What a partner pays the bank for a customer who qualifies (partner_join origin)."""
    ambassador_bonus_points: tuple[tuple[int, int], ...] = ((1, 200), (5, 1_000), (10, 3_000))
    """(n, points): a bonus when the referrer's n-th referral is rewarded."""
    monthly_cap: int = 20
    velocity_per_hour: int = 5
    clawback_window: timedelta = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Reward:
    """One side's reward: points to a customer, or a fee (minor units) between bank and partner."""

    idempotency_key: str
    role: Literal["referee", "referrer", "ambassador"]
    beneficiary: Party
    points: int = 0
    amount_minor: int = 0


@dataclass(frozen=True, slots=True)
class Referral:
    referral_id: str
    origin: Origin
    referrer: Party
    invited_at: datetime
    code: str | None = None
    partner_id: str | None = None
    status: ReferralStatus = ReferralStatus.INVITED
    reason: str = "invited"
    referee: Party | None = None
    signed_up_at: datetime | None = None
    qualify_by: datetime | None = None
    qualifying_event_id: str | None = None
    qualified_at: datetime | None = None
    rewards: tuple[Reward, ...] = field(default=())
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    """What the bank's own topics showed of one customer id: since when it is known (the
    earliest ``joined_at`` of a profile or onboarding, or ``occurred_at`` of a transaction)
    and the event that proves it."""

    customer_id: str
    known_since: datetime
    evidence: str


@dataclass(frozen=True, slots=True)
class SignupFacts:
    """What the caller looked up, in the same transaction, for the guards."""

    referee_referred_by: str | None
    """Referral id that already owns this referee (one referrer per referee), if any."""
    referrer_signups_this_month: int
    referrer_signups_last_hour: int
    referrer_chain: tuple[str, ...] = ()
    """Who referred the referrer, who referred them, ... (customer ids, nearest first)."""
    joined_at: datetime | None = None
    """When the referee says they became a customer (the onboarding's ``joined_at``); None
    where being a customer already is the point (a customer joining a partner program)."""
    referee_history: CustomerHistory | None = None
    """The referee's own customer id as seen before, if at all."""
    same_identity: tuple[CustomerHistory, ...] = ()
    """Other customer ids with the referee's identity hash (the same person's other accounts)."""


@dataclass(frozen=True, slots=True)
class QualifyingTransaction:
    event_id: str
    customer_id: str
    amount_minor: int
    at: datetime


@dataclass(frozen=True, slots=True)
class GrantRewards:
    rewards: tuple[Reward, ...]


@dataclass(frozen=True, slots=True)
class ClawBackRewards:
    """Reverse every reward; ``idempotency_keys`` pairs with ``reward_keys``."""

    reward_keys: tuple[str, ...]
    idempotency_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NoLedgerAction:
    pass


LedgerAction: TypeAlias = GrantRewards | ClawBackRewards | NoLedgerAction
NO_ACTION: Final = NoLedgerAction()


@dataclass(frozen=True, slots=True)
class Transition:
    referral: Referral
    action: LedgerAction
    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    referral: Referral
    reason: IgnoreReason
    detail: str


# --------------------------------------------------------------------------------- transitions


def invite(
    *,
    referral_id: str,
    origin: Origin,
    referrer: Party,
    now: datetime,
    code: str | None = None,
    partner_id: str | None = None,
) -> Referral:
    """A new referral in ``invited`` (a code shared, an offer sent, a join started)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if origin is not Origin.CUSTOMER_INVITE and partner_id is None:
        raise ValueError(f"a {origin} referral names its partner")
    if code is not None and not is_valid_code(code):
        raise InvalidReferralCode(f"{code!r} is not a referral code")
    return Referral(
        referral_id=referral_id,
        origin=origin,
        referrer=referrer,
        invited_at=now,
        code=code,
        partner_id=partner_id,
        updated_at=now,
    )


def _refuse(referral: Referral, reason: RefusalReason, detail: str, now: datetime) -> Transition:
    moved = replace(
        referral, status=ReferralStatus.REFUSED, reason=f"{reason}: {detail}", updated_at=now
    )
    return Transition(moved, NO_ACTION, str(reason))


def _same_person(a: Party, b: Party) -> RefusalReason | None:
    if a.kind == b.kind and a.id == b.id:
        return RefusalReason.SELF_REFERRAL
    if a.identity_hash is not None and a.identity_hash == b.identity_hash:
        return RefusalReason.SELF_REFERRAL_IDENTITY
    return None


def _existing_customer(referee: Party, facts: SignupFacts) -> str | None:
    """Why the referee was a customer before joining, or None: their id, or another account
    of the same person, was known before the ``joined_at`` of this sign-up."""
    if facts.joined_at is None:
        return None
    own = facts.referee_history
    if own is not None and own.known_since < facts.joined_at:
        return (f"{referee.id} known since {own.known_since.isoformat()} ({own.evidence}), "
                f"before joining at {facts.joined_at.isoformat()}")
    for other in facts.same_identity:
        if other.customer_id != referee.id and other.known_since < facts.joined_at:
            return (f"same identity as customer {other.customer_id}, known since "
                    f"{other.known_since.isoformat()} ({other.evidence})")
    return None


def reason_code_of(referral: Referral) -> str | None:
    """The stable code behind a refused or clawed-back referral's reason, else None."""
    if referral.status is ReferralStatus.REFUSED:
        return referral.reason.split(":", 1)[0]
    if referral.status is ReferralStatus.CLAWED_BACK:
        return "qualifying_purchase_refunded"
    return None


def sign_up(
    referral: Referral,
    referee: Party,
    facts: SignupFacts,
    policy: ReferralPolicy,
    now: datetime,
) -> Transition | Ignored:
    """The referee signed up (opened an account, or joined the partner program).

    Guards, first that fires wins: the referrer themselves (``self_referral``), the same person
    by identity hash (``self_referral_identity``), the referee in the referrer's chain of
    referrers (``referral_ring``), another referral owns the referee (``already_referred``),
    the referee was a customer before joining (``already_a_customer``), then the customer
    referrer's monthly cap and hourly velocity."""
    if referral.status is not ReferralStatus.INVITED:
        return Ignored(referral, IgnoreReason.NOT_INVITED, f"referral is {referral.status}")
    same = _same_person(referral.referrer, referee)
    if same is RefusalReason.SELF_REFERRAL:
        return _refuse(referral, same, f"{referee.id} cannot refer themselves", now)
    if same is not None:
        return _refuse(referral, same, f"{referee.id} has the identity hash of the referrer "
                       f"{referral.referrer.id}", now)
    if referee.kind == "customer" and referee.id in facts.referrer_chain:
        chain = " <- ".join((referral.referrer.id, *facts.referrer_chain))
        return _refuse(referral, RefusalReason.REFERRAL_RING,
                       f"{referee.id} is in the referrer's chain {chain}", now)
    if facts.referee_referred_by not in (None, referral.referral_id):
        return _refuse(
            referral,
            RefusalReason.ALREADY_REFERRED,
            f"{referee.id} was referred by {facts.referee_referred_by}",
            now,
        )
    existing = _existing_customer(referee, facts)
    if existing is not None:
        return _refuse(referral, RefusalReason.ALREADY_A_CUSTOMER, existing, now)
    if referral.referrer.kind == "customer":
        # Caps protect the bank from referral farming; partners are bound by contract instead.
        if facts.referrer_signups_this_month >= policy.monthly_cap:
            return _refuse(
                referral,
                RefusalReason.MONTHLY_CAP_REACHED,
                f"{facts.referrer_signups_this_month} sign-ups this month, cap "
                f"{policy.monthly_cap}",
                now,
            )
        if facts.referrer_signups_last_hour >= policy.velocity_per_hour:
            return _refuse(
                referral,
                RefusalReason.VELOCITY_LIMIT,
                f"{facts.referrer_signups_last_hour} sign-ups in the last hour, limit "
                f"{policy.velocity_per_hour}",
                now,
            )
    moved = replace(
        referral,
        status=ReferralStatus.SIGNED_UP,
        reason="signed_up",
        referee=referee,
        signed_up_at=now,
        qualify_by=now + policy.qualify_window,
        updated_at=now,
    )
    return Transition(moved, NO_ACTION, "signed_up")


def _rewards(
    referral: Referral, referee: Party, policy: ReferralPolicy, referrer_rewarded_before: int
) -> tuple[Reward, ...]:
    prefix = f"referral:{referral.referral_id}"
    out = [Reward(f"{prefix}:referee", "referee", referee, points=policy.referee_points)]
    referrer = referral.referrer
    if referrer.kind == "customer":
        points = policy.referrer_points
        out.append(Reward(f"{prefix}:referrer", "referrer", referrer, points=points))
        nth = referrer_rewarded_before + 1
        bonus = dict(policy.ambassador_bonus_points).get(nth)
        if bonus:
            out.append(Reward(f"{prefix}:ambassador-{nth}", "ambassador", referrer, points=bonus))
    else:
        # A partner referrer is paid a fee; the bank as referrer (partner_join) is paid one.
        fee = policy.partner_fee_minor if referrer.kind == "partner" else policy.bank_fee_minor
        out.append(Reward(f"{prefix}:referrer", "referrer", referrer, amount_minor=fee))
    return tuple(r for r in out if r.points or r.amount_minor)


def qualify(
    referral: Referral,
    txn: QualifyingTransaction,
    policy: ReferralPolicy,
    *,
    referrer_rewarded_before: int,
) -> Transition | Ignored:
    """The referee's transaction: the first one at or above the minimum, inside the window,
    qualifies and grants both sides' rewards (and the ambassador bonus, if due)."""
    if referral.status is not ReferralStatus.SIGNED_UP:
        return Ignored(
            referral, IgnoreReason.NOT_AWAITING_QUALIFICATION, f"referral is {referral.status}"
        )
    referee = referral.referee
    assert referee is not None and referral.qualify_by is not None  # set by sign_up
    if txn.customer_id != referee.id:
        return Ignored(referral, IgnoreReason.NOT_THE_REFEREE, f"{txn.customer_id} != {referee.id}")
    if txn.at > referral.qualify_by:
        return _refuse(
            referral,
            RefusalReason.WINDOW_PASSED,
            f"first qualifying transaction {txn.event_id} after {referral.qualify_by.isoformat()}",
            txn.at,
        )
    if txn.amount_minor < policy.qualifying_amount_min_minor:
        return Ignored(
            referral,
            IgnoreReason.BELOW_QUALIFYING_AMOUNT,
            f"{txn.amount_minor} < {policy.qualifying_amount_min_minor}",
        )
    rewards = _rewards(referral, referee, policy, referrer_rewarded_before)
    moved = replace(
        referral,
        status=ReferralStatus.QUALIFIED,
        reason="qualified",
        qualifying_event_id=txn.event_id,
        qualified_at=txn.at,
        rewards=rewards,
        updated_at=txn.at,
    )
    return Transition(moved, GrantRewards(rewards), "qualified")


def rewards_granted(referral: Referral, now: datetime) -> Transition | Ignored:
    """The ledger committed the rewards."""
    if referral.status is not ReferralStatus.QUALIFIED:
        return Ignored(referral, IgnoreReason.NOT_QUALIFIED, f"referral is {referral.status}")
    moved = replace(referral, status=ReferralStatus.REWARDED, reason="rewarded", updated_at=now)
    return Transition(moved, NO_ACTION, "rewarded")


def refund(
    referral: Referral, original_event_id: str, at: datetime, policy: ReferralPolicy
) -> Transition | Ignored:
    """A refund of the qualifying purchase inside the clawback window takes every reward back."""
    if referral.status not in (ReferralStatus.QUALIFIED, ReferralStatus.REWARDED):
        return Ignored(referral, IgnoreReason.NOT_QUALIFIED, f"referral is {referral.status}")
    if original_event_id != referral.qualifying_event_id:
        return Ignored(referral, IgnoreReason.NOT_THE_QUALIFYING_EVENT, original_event_id)
    assert referral.qualified_at is not None
    until = referral.qualified_at + policy.clawback_window
    if at > until:
        return Ignored(referral, IgnoreReason.CLAWBACK_WINDOW_PASSED, f"after {until.isoformat()}")
    keys = tuple(r.idempotency_key for r in referral.rewards)
    moved = replace(
        referral,
        status=ReferralStatus.CLAWED_BACK,
        reason=f"clawed_back: qualifying purchase {original_event_id} refunded",
        updated_at=at,
    )
    return Transition(
        moved, ClawBackRewards(keys, tuple(f"{k}:clawback" for k in keys)), "clawed_back"
    )


def expire(referral: Referral, now: datetime) -> Transition | Ignored:
    """The timer: a signed-up referral whose window closed without a qualifying transaction."""
    if referral.status is not ReferralStatus.SIGNED_UP:
        return Ignored(
            referral, IgnoreReason.NOT_AWAITING_QUALIFICATION, f"referral is {referral.status}"
        )
    assert referral.qualify_by is not None
    if now <= referral.qualify_by:
        return Ignored(referral, IgnoreReason.WINDOW_OPEN, f"open until {referral.qualify_by}")
    return _refuse(referral, RefusalReason.WINDOW_PASSED, "no qualifying transaction", now)

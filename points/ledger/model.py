"""The ledger's vocabulary: accounts, operations (commands) and their results.

Standard library only. Points are ``int``; times are timezone-aware ``datetime``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_str
from typing import Final, Literal, NamedTuple, TypeAlias

from points.errors import PointsError

__all__ = [
    "AMOUNT_MAX",
    "BANK",
    "BATCH_SIZE_MAX",
    "ENTRY_KINDS",
    "HOT_KINDS",
    "AccountKind",
    "AccountRef",
    "Adjust",
    "AlreadyApplied",
    "Applied",
    "Clawback",
    "Earn",
    "EntryKind",
    "ExpireHolds",
    "ExpireLots",
    "Hold",
    "Operation",
    "OperationResult",
    "PostHold",
    "Reason",
    "Rejected",
    "Reverse",
    "Spend",
    "VoidHold",
    "reason_json",
    "request_hash",
]

BANK: Final = "bank"
"""Program id of the bank's own points; partner programs use their partner id."""

AMOUNT_MAX: Final = 10**12
"""Largest amount one operation may move (limits on everything)."""

BATCH_SIZE_MAX: Final = 10_000
"""Most operations one ``apply_batch`` call takes."""

AccountKind: TypeAlias = Literal[
    "wallet", "held", "receivable", "issuance", "clearing", "expiry"
]
EntryKind: TypeAlias = Literal[
    "earn", "spend", "hold", "post", "void", "swap", "referral",
    "adjust", "reverse", "clawback", "expire",
]
ENTRY_KINDS: Final[tuple[EntryKind, ...]] = (
    "earn", "spend", "hold", "post", "void", "swap", "referral",
    "adjust", "reverse", "clawback", "expire",
)
CUSTOMER_KINDS: Final[tuple[AccountKind, ...]] = ("wallet", "held", "receivable")
HOT_KINDS: Final[tuple[AccountKind, ...]] = ("issuance", "clearing", "expiry")
"""Accounts written by nearly every batch; their cached balance is sharded."""

# Sign rule stored with each balance row: balance * sign >= 0 (credits minus debits).
ACCOUNT_SIGN: Final[dict[str, int]] = {
    "wallet": 1,       # customer's points: credits never below debits
    "held": 1,
    "receivable": -1,  # debt owed by the customer: debits never below credits
    "issuance": 0,
    "clearing": 0,
    "expiry": 0,
}


class AccountRef(NamedTuple):
    """An account's natural key: one per (program, owner, kind).

    A NamedTuple rather than a dataclass: it is a dict key in every step of the batch path,
    and tuple hashing and comparison run in C.
    """

    program: str
    owner: str
    kind: AccountKind

    @staticmethod
    def wallet(program: str, customer_id: str) -> AccountRef:
        return AccountRef(program, customer_id, "wallet")

    @staticmethod
    def held(program: str, customer_id: str) -> AccountRef:
        return AccountRef(program, customer_id, "held")

    @staticmethod
    def receivable(program: str, customer_id: str) -> AccountRef:
        return AccountRef(program, customer_id, "receivable")

    @staticmethod
    def issuance(program: str) -> AccountRef:
        return AccountRef(program, program, "issuance")

    @staticmethod
    def clearing(program: str, partner_id: str) -> AccountRef:
        return AccountRef(program, partner_id, "clearing")

    @staticmethod
    def expiry(program: str) -> AccountRef:
        return AccountRef(program, program, "expiry")

    @property
    def is_hot(self) -> bool:
        return self.kind in HOT_KINDS


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an entry exists; stored as JSON on the entry header."""

    rule_ids: tuple[str, ...] = ()
    ruleset_version: str | None = None
    campaign: str | None = None
    operator: str | None = None
    source_event: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.rule_ids:
            out["rule_ids"] = list(self.rule_ids)
        if self.ruleset_version is not None:
            out["ruleset_version"] = self.ruleset_version
        if self.campaign is not None:
            out["campaign"] = self.campaign
        if self.operator is not None:
            out["operator"] = self.operator
        if self.source_event is not None:
            out["source_event"] = self.source_event
        if self.note is not None:
            out["note"] = self.note
        return out

    @staticmethod
    def from_json(data: dict[str, object] | None) -> Reason:
        if not data:
            return Reason()
        rule_ids = data.get("rule_ids") or []
        assert isinstance(rule_ids, list)

        def text(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        return Reason(
            rule_ids=tuple(str(r) for r in rule_ids),
            ruleset_version=text("ruleset_version"),
            campaign=text("campaign"),
            operator=text("operator"),
            source_event=text("source_event"),
            note=text("note"),
        )


NO_REASON: Final = Reason()


def reason_json(reason: Reason) -> str | None:
    """``reason.to_json()`` as compact JSON text (None when empty), as stored on the entry.

    Byte for byte what ``json.dumps(reason.to_json(), separators=(",", ":"))`` gives, built
    with the C string encoder directly: the batch path stores one per entry, and the general
    encoder's per-call set-up cost more than the encoding.
    """
    parts: list[str] = []
    try:
        if reason.rule_ids:
            parts.append('"rule_ids":[' + ",".join(map(_json_str, reason.rule_ids)) + "]")
        if reason.ruleset_version is not None:
            parts.append('"ruleset_version":' + _json_str(reason.ruleset_version))
        if reason.campaign is not None:
            parts.append('"campaign":' + _json_str(reason.campaign))
        if reason.operator is not None:
            parts.append('"operator":' + _json_str(reason.operator))
        if reason.source_event is not None:
            parts.append('"source_event":' + _json_str(reason.source_event))
        if reason.note is not None:
            parts.append('"note":' + _json_str(reason.note))
    except TypeError:  # a value that is not a str: let the general encoder decide
        data = reason.to_json()
        return json.dumps(data, separators=(",", ":")) if data else None
    return "{" + ",".join(parts) + "}" if parts else None


# --- operations (commands). Each carries the caller's idempotency key. -------------------


@dataclass(frozen=True, slots=True)
class Earn:
    """Credit a customer's wallet and create a lot that expires at ``expires_at``.

    Funded by the program's issuance account, or by ``from_partner``'s clearing account
    (an inbound swap, kind ``swap``). Outstanding receivable debt is paid down first.
    """

    idempotency_key: str
    customer_id: str
    amount: int
    expires_at: datetime
    program: str = BANK
    kind: Literal["earn", "referral", "swap"] = "earn"
    from_partner: str | None = None
    reason: Reason = NO_REASON


@dataclass(frozen=True, slots=True)
class Spend:
    """Debit a wallet, soonest-expiring lots first; credit issuance or ``to_partner``."""

    idempotency_key: str
    customer_id: str
    amount: int
    program: str = BANK
    to_partner: str | None = None
    reason: Reason = NO_REASON


@dataclass(frozen=True, slots=True)
class Hold:
    """Move points from the wallet to the customer's held account until posted or voided."""

    idempotency_key: str
    customer_id: str
    amount: int
    timeout_at: datetime
    program: str = BANK
    to_partner: str | None = None
    reason: Reason = NO_REASON


@dataclass(frozen=True, slots=True)
class PostHold:
    """Post a hold, fully (``amount=None``) or partially; the rest returns to the wallet."""

    idempotency_key: str
    hold_key: str
    amount: int | None = None
    reason: Reason = NO_REASON


@dataclass(frozen=True, slots=True)
class VoidHold:
    """Return a held amount to the wallet."""

    idempotency_key: str
    hold_key: str
    reason: Reason = NO_REASON


@dataclass(frozen=True, slots=True)
class ExpireHolds:
    """Void every pending hold of ``program`` whose timeout is at or before ``as_of``."""

    idempotency_key: str
    as_of: datetime
    program: str = BANK
    limit: int = 10_000
    reason: Reason = NO_REASON


@dataclass(frozen=True, slots=True)
class Reverse:
    """Undo a committed entry with a new entry that points at it (earn, spend, adjust...)."""

    idempotency_key: str
    entry_key: str
    reason: Reason = NO_REASON


@dataclass(frozen=True, slots=True)
class Clawback:
    """Take back (part of) an earning; what the wallet cannot cover becomes receivable debt."""

    idempotency_key: str
    earning_key: str
    amount: int | None = None
    reason: Reason = NO_REASON


@dataclass(frozen=True, slots=True)
class ExpireLots:
    """Expire what is left of ``program``'s lots whose date is at or before ``as_of``."""

    idempotency_key: str
    as_of: datetime
    program: str = BANK
    limit: int = 10_000
    reason: Reason = NO_REASON


@dataclass(frozen=True, slots=True)
class Adjust:
    """Operator correction: credit (``delta > 0``, new lot) or debit a wallet, with a reason."""

    idempotency_key: str
    customer_id: str
    delta: int
    reason: Reason
    program: str = BANK
    expires_at: datetime | None = None


Operation: TypeAlias = (
    Earn | Spend | Hold | PostHold | VoidHold | ExpireHolds | Reverse | Clawback | ExpireLots
    | Adjust
)


_HASHED_FIELDS: dict[type, tuple[str, ...]] = {}


def request_hash(op: Operation) -> int:
    """A 64-bit fingerprint of everything in the request except its key (signed, for SQL).

    Same key and same hash is a replay ("exists"); same key and another hash is a conflict.
    Built from the ``repr`` of plain values (str, int, None, tuples, ISO times), which is
    stable across processes and Python versions.
    """
    if type(op) is Earn:
        # The hot path (nearly every operation is an earning): the same list the general
        # code below builds, spelled out. Anything unusual takes the general code.
        r = op.reason
        when: object = op.expires_at
        if type(r) is Reason and isinstance(when, datetime):
            # ``%r`` is ``repr``, so this is the text ``repr([...])`` of the general code
            # gives, without building the list and tuple first (a fifth of the hash's cost).
            text = _EARN_TEXT % (
                op.customer_id, op.amount, when.isoformat(), op.program, op.kind,
                op.from_partner, r.rule_ids, r.ruleset_version, r.campaign, r.operator,
                r.source_event, r.note,
            )
            return int.from_bytes(_blake2b(text.encode(), digest_size=8).digest(), "big",
                                  signed=True)
    cls = type(op)
    names = _HASHED_FIELDS.get(cls)
    if names is None:
        names = _HASHED_FIELDS[cls] = tuple(f.name for f in fields(op)[1:])
    parts: list[object] = [cls.__name__]
    for name in names:
        value = getattr(op, name)
        if type(value) is Reason:
            value = (value.rule_ids, value.ruleset_version, value.campaign, value.operator,
                     value.source_event, value.note)
        elif isinstance(value, datetime):
            value = value.isoformat()
        parts.append(value)
    digest = _blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_blake2b = hashlib.blake2b
_EARN_TEXT: Final = "['Earn', %r, %r, %r, %r, %r, %r, (%r, %r, %r, %r, %r, %r)]"


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    """The operation was committed now as entry ``entry_id``."""

    idempotency_key: str
    entry_id: int


@dataclass(frozen=True, slots=True)
class AlreadyApplied:
    """The same request was committed before (a replay): nothing changed."""

    idempotency_key: str
    entry_id: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """The request was refused; ``entry_id`` is the stored refusal (None for a conflict).

    ``replayed`` is True when the refusal was stored by an earlier call with this key.
    """

    idempotency_key: str
    error: PointsError
    entry_id: int | None
    replayed: bool = False

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def message(self) -> str:
        return self.error.message


OperationResult: TypeAlias = Applied | AlreadyApplied | Rejected

"""The rules' records: who earns (:class:`Profile`), what a purchase is to the rules
(:class:`PurchaseFacts`), what an event earned (:class:`Evaluation`, its :class:`Line` s) and
what to keep so a refund can take it back (:class:`EarningRecord`).

Every record is immutable. A few are made for every event on the worker's hot path, so this
module also builds them without the frozen dataclasses' per-field ``__init__``
(:func:`build_line`, :func:`build_evaluation`, :meth:`Evaluation.record`): the same values,
about half the cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal

from points.events import (
    ChallengeOptIn,
    CheckIn,
    CustomerOnboarded,
    CustomerProfile,
    PartnerPurchase,
    Purchase,
    Share,
)
from points.rules.state import RuleState, slot_setter

__all__ = [
    "UNKNOWN_JOINED_AT",
    "ClawbackPolicy",
    "EarningEvent",
    "EarningRecord",
    "Evaluation",
    "Line",
    "Profile",
    "PurchaseFacts",
    "build_evaluation",
    "build_line",
    "line_from_json",
]

ClawbackPolicy = Literal["proportional", "full_refund", "milestone", "kept"]
#: The join date of a customer whose profile has not arrived (a purchase can be consumed before
#: its bank.customers onboarding): :meth:`Profile.unknown`. No audience or reactivation counts
#: days from it: a customer nobody knows is neither new, nor dormant, nor coming back.
UNKNOWN_JOINED_AT: Final = datetime(1970, 1, 1, tzinfo=UTC)
EarningEvent = Purchase | PartnerPurchase | CheckIn | Share | ChallengeOptIn


@dataclass(frozen=True, slots=True)
class Profile:
    """What the rules know about a customer (from the bank.customers topic)."""

    customer_id: str
    segment: str
    joined_at: datetime
    status: str = "active"
    birth_year: int | None = None
    #: the profile's marketing_consent; absent or unknown means no nudges (points/nudges)
    marketing_consent: bool = False

    @classmethod
    def unknown(cls, customer_id: str) -> Profile:
        """A customer whose profile has not arrived: no segment, age or join date."""
        return cls(customer_id, "unknown", UNKNOWN_JOINED_AT)

    @classmethod
    def from_event(cls, event: CustomerProfile | CustomerOnboarded) -> Profile:
        status = event.status if isinstance(event, CustomerProfile) else "active"
        return cls(
            customer_id=event.customer_id,
            segment=event.segment,
            joined_at=event.joined_at,
            status=status,
            birth_year=event.birth_year,
            marketing_consent=event.marketing_consent is True,
        )


@dataclass(frozen=True, slots=True)
class PurchaseFacts:
    """A purchase-like input: a real purchase, a partner purchase, or a what-if for preview.

    (Not ``Purchase``: that is the ``bank.transactions`` event, :class:`points.events.Purchase`,
    which the rules read too; nor ``Spend``, the ledger's debit operation.)
    """

    amount_minor: int
    currency: str
    mcc: str | None
    merchant_id: str
    channel: str
    occurred_at: datetime
    partner_id: str | None = None
    event_id: str = "preview"
    customer_id: str = "preview"

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError("amount_minor must be an integer number of minor units")
        if self.amount_minor <= 0:
            raise ValueError("amount_minor must be positive")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must carry a time zone")

    @classmethod
    def from_purchase(cls, event: Purchase) -> PurchaseFacts:
        return cls(
            amount_minor=event.amount_minor,
            currency=event.currency,
            mcc=event.mcc,
            merchant_id=event.merchant_id,
            channel=event.channel,
            occurred_at=event.occurred_at,
            partner_id=event.partner_id,
            event_id=event.event_id,
            customer_id=event.customer_id,
        )

    @classmethod
    def from_partner_purchase(cls, event: PartnerPurchase) -> PurchaseFacts:
        return cls(
            amount_minor=event.amount_minor,
            currency=event.currency,
            mcc=event.mcc,
            merchant_id=f"partner:{event.partner_id}",
            channel="partner",
            occurred_at=event.occurred_at,
            partner_id=event.partner_id,
            event_id=event.event_id,
            customer_id=event.customer_id,
        )


@dataclass(frozen=True, slots=True)
class Line:
    """One rule's contribution to an award."""

    rule_id: str
    kind: str
    points: int
    explanation: str
    clawback: ClawbackPolicy

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "kind": self.kind,
            "points": self.points,
            "explanation": self.explanation,
            "clawback": self.clawback,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Line:
        policy = data["clawback"]
        if policy not in ("proportional", "full_refund", "milestone", "kept"):
            raise ValueError(f"unknown clawback policy {policy!r}")
        points = data["points"]
        if not isinstance(points, int) or isinstance(points, bool) or points < 0:
            raise ValueError(f"line points must be a non-negative integer, got {points!r}")
        return cls(
            rule_id=str(data["rule_id"]),
            kind=str(data["kind"]),
            points=points,
            explanation=str(data["explanation"]),
            clawback=policy,
        )


@dataclass(frozen=True)
class EarningRecord:
    """What to keep about an earning so a later refund can claw it back exactly.

    ``refunded_minor`` and ``clawed`` (points taken back so far, per rule id) grow with each
    refund; :func:`points.rules.clawback.clawback` returns the updated record to store.
    """

    event_id: str
    customer_id: str
    ruleset_version: str
    amount_minor: int
    currency: str
    partner_id: str | None
    lines: tuple[Line, ...]
    refunded_minor: int = 0
    clawed: Mapping[str, int] = field(default_factory=dict)
    #: campaign id -> the points this purchase would have earned from it had the customer not
    #: been in the campaign's holdout (points/rules/holdout.py); kept for the uplift report
    held_out: Mapping[str, int] = field(default_factory=dict)

    @property
    def points(self) -> int:
        return sum(line.points for line in self.lines)

    def to_json(self) -> dict[str, Any]:
        # Once per purchase: each line's dict is built inline (Line.to_json's shape), and an
        # empty ``clawed`` (every record until a refund) skips the sort.
        clawed = self.clawed
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "customer_id": self.customer_id,
            "ruleset_version": self.ruleset_version,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "partner_id": self.partner_id,
            "lines": [
                {
                    "rule_id": line.rule_id,
                    "kind": line.kind,
                    "points": line.points,
                    "explanation": line.explanation,
                    "clawback": line.clawback,
                }
                for line in self.lines
            ],
            "refunded_minor": self.refunded_minor,
            "clawed": dict(sorted(clawed.items())) if clawed else {},
        }
        if self.held_out:  # absent on the usual record: records before holdouts look the same
            out["held_out"] = dict(self.held_out)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EarningRecord:
        partner = data["partner_id"]
        held_out = data.get("held_out")
        return cls(
            event_id=str(data["event_id"]),
            customer_id=str(data["customer_id"]),
            ruleset_version=str(data["ruleset_version"]),
            amount_minor=int(data["amount_minor"]),
            currency=str(data["currency"]),
            partner_id=None if partner is None else str(partner),
            lines=tuple(line_from_json(line) for line in data["lines"]),
            refunded_minor=int(data["refunded_minor"]),
            clawed={str(k): int(v) for k, v in data["clawed"].items()},
            held_out={str(k): int(v) for k, v in held_out.items()} if held_out else {},
        )


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one event: points, why, badges, and the customer's next rule state."""

    event_id: str
    customer_id: str
    ruleset_version: str
    points: int
    lines: tuple[Line, ...]
    badges_awarded: tuple[str, ...]
    notes: tuple[str, ...]
    state: RuleState
    amount_minor: int = 0
    currency: str | None = None
    partner_id: str | None = None
    #: what decided without this event because it came too late (a streak rule's id: the
    #: period is older than the streak remembers; "caps": its day's or month's counters are
    #: gone); the earning service records it as a refusal (docs/rules.md, "Late events")
    too_late_for: tuple[str, ...] = ()
    #: (campaign id, points) the customer would have earned but for the campaign's holdout
    held_out: tuple[tuple[str, int], ...] = ()

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The ids of the rules that fired, in order (a line capped to 0 still fired)."""
        return tuple(line.rule_id for line in self.lines)

    def record(self) -> EarningRecord:
        """The record a later refund of this event needs (see points.rules.clawback)."""
        # Made for every purchase: the instance dict is filled at once (see build_evaluation).
        record = _new(EarningRecord)
        _set_dict(
            record,
            "__dict__",
            {
                "event_id": self.event_id,
                "customer_id": self.customer_id,
                "ruleset_version": self.ruleset_version,
                "amount_minor": self.amount_minor,
                "currency": self.currency or "",
                "partner_id": self.partner_id,
                "lines": self.lines,
                "refunded_minor": 0,
                "clawed": {},
                "held_out": dict(self.held_out) if self.held_out else _NOTHING_HELD,
            },
        )
        return record

    def explain(self) -> str:
        """A few readable lines: total, then each rule's points and reason, then notes."""
        out = [f"{self.points} points (rule set {self.ruleset_version})"]
        out += [f"  {line.rule_id}: {line.points} - {line.explanation}" for line in self.lines]
        out += [f"  badge: {badge}" for badge in self.badges_awarded]
        out += [f"  note: {note}" for note in self.notes]
        return "\n".join(out)


#: the ``held_out`` of every record outside a holdout (shared, read-only: no dict per purchase)
_NOTHING_HELD: Mapping[str, int] = MappingProxyType({})

_POLICIES = frozenset({"proportional", "full_refund", "milestone", "kept"})


def line_from_json(data: Mapping[str, Any]) -> Line:
    """``Line.from_json(data)``: the stored shape (str fields, a plain int) checked inline."""
    try:
        rule_id = data["rule_id"]
        kind = data["kind"]
        policy = data["clawback"]
        points = data["points"]
        explanation = data["explanation"]
    except (KeyError, TypeError):
        return Line.from_json(data)  # raises what it always raised
    if (
        type(rule_id) is str
        and type(kind) is str
        and type(policy) is str
        and policy in _POLICIES
        and type(points) is int
        and points >= 0
        and type(explanation) is str
    ):
        return build_line(rule_id, kind, points, explanation, policy)  # type: ignore[arg-type]
    return Line.from_json(data)


_new = object.__new__
# Results are frozen dataclasses; their generated __init__ sets each field through
# object.__setattr__, about twice the cost of filling the slots (Line) or the instance dict
# (Evaluation, EarningRecord) directly, and a few of them are made for every event.
_set_line_rule_id = slot_setter(Line, "rule_id")
_set_line_kind = slot_setter(Line, "kind")
_set_line_points = slot_setter(Line, "points")
_set_line_explanation = slot_setter(Line, "explanation")
_set_line_clawback = slot_setter(Line, "clawback")
_set_dict = object.__setattr__


def build_line(
    rule_id: str, kind: str, points: int, explanation: str, policy: ClawbackPolicy
) -> Line:
    """``Line(rule_id, kind, points, explanation, policy)``, built faster."""
    line = _new(Line)
    _set_line_rule_id(line, rule_id)
    _set_line_kind(line, kind)
    _set_line_points(line, points)
    _set_line_explanation(line, explanation)
    _set_line_clawback(line, policy)
    return line


def build_evaluation(
    event_id: str,
    customer_id: str,
    ruleset_version: str,
    points: int,
    lines: tuple[Line, ...],
    badges_awarded: tuple[str, ...],
    notes: tuple[str, ...],
    state: RuleState,
    amount_minor: int = 0,
    currency: str | None = None,
    partner_id: str | None = None,
    too_late_for: tuple[str, ...] = (),
    held_out: tuple[tuple[str, int], ...] = (),
) -> Evaluation:
    """``Evaluation(...)`` with the same fields, built faster."""
    evaluation = _new(Evaluation)
    _set_dict(
        evaluation,
        "__dict__",
        {
            "event_id": event_id,
            "customer_id": customer_id,
            "ruleset_version": ruleset_version,
            "points": points,
            "lines": lines,
            "badges_awarded": badges_awarded,
            "notes": notes,
            "state": state,
            "amount_minor": amount_minor,
            "currency": currency,
            "partner_id": partner_id,
            "too_late_for": too_late_for,
            "held_out": held_out,
        },
    )
    return evaluation

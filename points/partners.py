"""Partner programs: their configuration, swap quotes, limits and settlement pricing.

The configuration (``config/partners.yaml``, loaded by ``adapters.config``) is validated here
with pydantic; everything else is integer arithmetic with a named rounding direction, always in
the bank's favour:

- outbound: partner units = points * num / den, rounded **down**
- fee: fixed + points * fee_bp / 10 000, the percentage rounded **up**, then clamped
- inbound: bank points = partner units * num / den, rounded **down**
- settlement: the bank pays for net outbound points rounded **down**, is paid rounded **up**

Refusals are typed errors with stable codes, all under :class:`PartnerError`::

    PointsError (points.errors)
    └── PartnerError                 partner_error
        ├── UnknownPartner           unknown_partner
        ├── PartnerUnavailable       partner_unavailable      swaps switched off in config
        ├── InboundNotOffered        inbound_not_offered
        ├── SwapBelowMinimum         swap_below_minimum
        ├── SwapAboveMaximum         swap_above_maximum
        ├── NotAMultiple             not_a_multiple
        ├── DailyLimitExceeded       daily_limit_exceeded
        ├── YearlyLimitExceeded      yearly_limit_exceeded
        ├── QuoteExpired             quote_expired
        ├── RateChanged              rate_changed             the quote's rate version is gone
        ├── QuoteMismatch            quote_mismatch           quote for another partner/amount
        └── MemberNotLinked          member_not_linked
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from points import swap_saga
from points.errors import PointsError

__all__ = [
    "BASIS_POINTS",
    "DailyLimitExceeded",
    "FeeSchedule",
    "InboundNotOffered",
    "InboundQuote",
    "InboundRules",
    "KeyRef",
    "Limits",
    "MemberNotLinked",
    "NotAMultiple",
    "OutboundRules",
    "PartnerConfig",
    "PartnerError",
    "PartnerUnavailable",
    "PartnersConfig",
    "Quote",
    "QuoteExpired",
    "QuoteMismatch",
    "Rate",
    "RateChanged",
    "Settlement",
    "SimulatorProfile",
    "SwapAboveMaximum",
    "SwapBelowMinimum",
    "UnknownPartner",
    "YearlyLimitExceeded",
    "check_limits",
    "check_quote",
    "fee_for",
    "inbound_quote",
    "open_swap_from_quote",
    "quote",
    "require_linked",
    "settlement_amount_minor",
]

BASIS_POINTS = 10_000

# ------------------------------------------------------------------------------------ errors


class PartnerError(PointsError):
    """A swap or partner request refused by a partner program's rules."""

    code: ClassVar[str] = "partner_error"


class UnknownPartner(PartnerError):
    code = "unknown_partner"


class PartnerUnavailable(PartnerError):
    code = "partner_unavailable"


class InboundNotOffered(PartnerError):
    code = "inbound_not_offered"


class SwapBelowMinimum(PartnerError):
    code = "swap_below_minimum"


class SwapAboveMaximum(PartnerError):
    code = "swap_above_maximum"


class NotAMultiple(PartnerError):
    code = "not_a_multiple"


class DailyLimitExceeded(PartnerError):
    code = "daily_limit_exceeded"


class YearlyLimitExceeded(PartnerError):
    code = "yearly_limit_exceeded"


class QuoteExpired(PartnerError):
    code = "quote_expired"


class RateChanged(PartnerError):
    code = "rate_changed"


class QuoteMismatch(PartnerError):
    code = "quote_mismatch"


class MemberNotLinked(PartnerError):
    code = "member_not_linked"


# ------------------------------------------------------------------------------------ config

PositiveInt = Annotated[int, Field(gt=0, le=10**12, strict=True)]
NonNegativeInt = Annotated[int, Field(ge=0, le=10**12, strict=True)]
Slug = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rate(_Strict):
    """``num / den`` target units per source unit, an exact integer ratio."""

    num: PositiveInt
    den: PositiveInt
    # Only "down" exists: both conversions give the customer something, so the bank's favour
    # is always down. Stating it in the file keeps the direction visible where rates are set.
    rounding: Literal["down"] = "down"


class FeeSchedule(_Strict):
    """The bank's fee in points, charged on top of the swapped points, as its own amount."""

    fixed_points: NonNegativeInt = 0
    rate_bp: Annotated[int, Field(ge=0, le=BASIS_POINTS, strict=True)] = 0
    min_points: NonNegativeInt = 0
    max_points: NonNegativeInt | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.max_points is not None and self.max_points < self.min_points:
            raise ValueError("fees.max_points must be >= fees.min_points")
        return self


class OutboundRules(_Strict):
    rate: Rate
    min_points: PositiveInt
    max_points: PositiveInt
    multiple_points: PositiveInt = 1

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_points < self.min_points:
            raise ValueError("outbound.max_points must be >= outbound.min_points")
        if self.min_points % self.multiple_points:
            raise ValueError("outbound.min_points must be a multiple of multiple_points")
        if swap_saga.convert_floor(self.min_points, self.rate.num, self.rate.den) < 1:
            raise ValueError("outbound.min_points must buy at least one partner unit")
        return self


class InboundRules(_Strict):
    enabled: bool = False
    rate: Rate = Rate(num=1, den=1)
    min_units: PositiveInt = 1
    max_units: PositiveInt = 10**9

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_units < self.min_units:
            raise ValueError("inbound.max_units must be >= inbound.min_units")
        least = swap_saga.convert_floor(self.min_units, self.rate.num, self.rate.den)
        if self.enabled and least < 1:
            raise ValueError("inbound.min_units must buy at least one bank point")
        return self


class Limits(_Strict):
    """Per customer, in bank points swapped out (fees excluded), calendar day/year in the
    configured time zone."""

    daily_points: PositiveInt
    yearly_points: PositiveInt

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.yearly_points < self.daily_points:
            raise ValueError("limits.yearly_points must be >= limits.daily_points")
        return self


class Settlement(_Strict):
    """Contract price: ``price_minor`` (currency minor units) per ``per_points`` bank points."""

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    price_minor: PositiveInt
    per_points: PositiveInt


class KeyRef(_Strict):
    """A signing key by reference: the secret lives in the environment variable ``env``."""

    key_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
    env: EnvName


class SimulatorProfile(_Strict):
    """How ``adapters.simulator`` imitates this partner (not used by the exchange)."""

    latency_ms: Annotated[int, Field(ge=0, le=600_000, strict=True)] = 200
    reject_rate_bp: Annotated[int, Field(ge=0, le=BASIS_POINTS, strict=True)] = 0
    reject_reason_code: Literal[
        "member_not_found", "member_not_linked", "limit_exceeded", "invalid_request", "other"
    ] = "other"
    reject_reason: Annotated[str, Field(min_length=1, max_length=500)] = "rejected by partner"


class PartnerConfig(_Strict):
    id: Slug
    name: Annotated[str, Field(min_length=1, max_length=100)]
    unit: Annotated[str, Field(min_length=1, max_length=40)]
    enabled: bool = True
    rate_version: Annotated[str, Field(min_length=1, max_length=64)]
    outbound: OutboundRules
    fees: FeeSchedule = FeeSchedule()
    inbound: InboundRules = InboundRules()
    limits: Limits
    settlement: Settlement
    signing_keys: Annotated[tuple[KeyRef, ...], Field(min_length=1)]
    """Live keys, newest first: the first signs what we send; any of them verifies."""
    confirmation_deadline_s: Annotated[int, Field(ge=1, le=30 * 86_400, strict=True)]
    quote_ttl_s: Annotated[int, Field(ge=1, le=86_400, strict=True)] = 300
    member_link_requires_name: bool = False
    simulator: SimulatorProfile = SimulatorProfile()

    @property
    def confirmation_deadline(self) -> timedelta:
        return timedelta(seconds=self.confirmation_deadline_s)

    @property
    def quote_ttl(self) -> timedelta:
        return timedelta(seconds=self.quote_ttl_s)


class PartnersConfig(_Strict):
    version: Annotated[int, Field(ge=1, strict=True)] = 1
    timezone: str = "Asia/Shanghai"
    partners: Mapping[Slug, PartnerConfig]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _ids_match(self) -> Self:
        for key, partner in self.partners.items():
            if key != partner.id:
                raise ValueError(f"partner under key {key!r} has id {partner.id!r}")
        key_ids = [ref.key_id for p in self.partners.values() for ref in p.signing_keys]
        if len(key_ids) != len(set(key_ids)):
            raise ValueError("signing key ids must be unique across partners")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def get(self, partner_id: str) -> PartnerConfig:
        try:
            return self.partners[partner_id]
        except KeyError:
            raise UnknownPartner(f"no partner program {partner_id!r}") from None


# ------------------------------------------------------------------------------------ quotes


@dataclass(frozen=True, slots=True)
class Quote:
    """A priced outbound swap, valid until ``expires_at``. The wallet is debited
    ``total_points`` (points + fee); the partner credits ``partner_units``."""

    quote_id: str
    partner_id: str
    rate_version: str
    points: int
    fee_points: int
    partner_units: int
    rate_num: int
    rate_den: int
    quoted_at: datetime
    expires_at: datetime

    @property
    def total_points(self) -> int:
        return self.points + self.fee_points


@dataclass(frozen=True, slots=True)
class InboundQuote:
    partner_id: str
    rate_version: str
    partner_units: int
    points: int


def _require_int(name: str, value: int) -> None:
    if type(value) is not int:
        raise TypeError(f"{name} must be int, not {type(value).__name__}")


def fee_for(fees: FeeSchedule, points: int) -> int:
    """Fixed part plus the percentage rounded up, clamped to [min, max]."""
    fee = fees.fixed_points + swap_saga.convert_ceil(points, fees.rate_bp, BASIS_POINTS)
    fee = max(fee, fees.min_points)
    if fees.max_points is not None:
        fee = min(fee, fees.max_points)
    return fee


def _quote_id(partner: PartnerConfig, points: int, now: datetime, customer_id: str) -> str:
    material = "\x1f".join(
        (partner.id, partner.rate_version, str(points), now.isoformat(), customer_id)
    )
    return "q-" + hashlib.blake2b(material.encode(), digest_size=12).hexdigest()


def quote(
    partner: PartnerConfig,
    points: int,
    now: datetime,
    *,
    customer_id: str = "",
    quote_id: str | None = None,
) -> Quote:
    """Price an outbound swap of ``points`` bank points, or raise the rule it breaks.

    The quote id is derived from its inputs unless given, so the same request at the same
    instant is the same quote (a client retry does not mint a second one).
    """
    _require_int("points", points)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not partner.enabled:
        raise PartnerUnavailable(f"swaps to {partner.id} are switched off")
    rules = partner.outbound
    if points < rules.min_points:
        raise SwapBelowMinimum(f"{points} points is below the minimum of {rules.min_points}")
    if points > rules.max_points:
        raise SwapAboveMaximum(f"{points} points is above the maximum of {rules.max_points}")
    if points % rules.multiple_points:
        raise NotAMultiple(f"{points} points is not a multiple of {rules.multiple_points}")
    units = swap_saga.convert_floor(points, rules.rate.num, rules.rate.den)
    return Quote(
        quote_id=quote_id or _quote_id(partner, points, now, customer_id),
        partner_id=partner.id,
        rate_version=partner.rate_version,
        points=points,
        fee_points=fee_for(partner.fees, points),
        partner_units=units,
        rate_num=rules.rate.num,
        rate_den=rules.rate.den,
        quoted_at=now,
        expires_at=now + partner.quote_ttl,
    )


def check_quote(q: Quote, partner: PartnerConfig, now: datetime) -> None:
    """A quote may be accepted while unexpired and while its rate version is current."""
    if q.partner_id != partner.id:
        raise QuoteMismatch(f"quote {q.quote_id} is for {q.partner_id}, not {partner.id}")
    if now >= q.expires_at:
        raise QuoteExpired(f"quote {q.quote_id} expired at {q.expires_at.isoformat()}")
    if q.rate_version != partner.rate_version:
        raise RateChanged(
            f"quote {q.quote_id} used rate {q.rate_version}; current is {partner.rate_version}"
        )


def check_limits(
    partner: PartnerConfig, points: int, *, swapped_today: int, swapped_this_year: int
) -> None:
    """Refuse a swap that would take the customer past the daily or yearly limit.

    The totals are bank points already swapped out to this partner by this customer (pending
    and completed swaps; rejected and expired ones gave their points back) in the current
    calendar day / year of ``PartnersConfig.timezone``.
    """
    for name, value in (
        ("points", points),
        ("swapped_today", swapped_today),
        ("swapped_this_year", swapped_this_year),
    ):
        _require_int(name, value)
        if value < 0:
            raise ValueError(f"{name} must be >= 0")
    limits = partner.limits
    if swapped_today + points > limits.daily_points:
        raise DailyLimitExceeded(
            f"{swapped_today} + {points} points exceeds the daily limit of {limits.daily_points}"
        )
    if swapped_this_year + points > limits.yearly_points:
        raise YearlyLimitExceeded(
            f"{swapped_this_year} + {points} points exceeds the yearly limit of "
            f"{limits.yearly_points}"
        )


def require_linked(partner: PartnerConfig, partner_member_id: str | None) -> str:
    """A swap needs the customer's member id at the partner (from a member_linked event)."""
    if not partner_member_id:
        raise MemberNotLinked(f"the customer has no linked {partner.name} membership")
    return partner_member_id


def open_swap_from_quote(
    q: Quote,
    partner: PartnerConfig,
    *,
    swap_id: str,
    customer_id: str,
    partner_member_id: str | None,
    now: datetime,
    swapped_today: int,
    swapped_this_year: int,
) -> swap_saga.Transition:
    """Every check, then the new swap in ``requested`` with the hold to place."""
    check_quote(q, partner, now)
    member = require_linked(partner, partner_member_id)
    check_limits(
        partner, q.points, swapped_today=swapped_today, swapped_this_year=swapped_this_year
    )
    return swap_saga.open_swap(
        swap_id=swap_id,
        customer_id=customer_id,
        partner_id=partner.id,
        partner_member_id=member,
        points=q.points,
        fee_points=q.fee_points,
        partner_units=q.partner_units,
        quote_id=q.quote_id,
        rate_version=q.rate_version,
        requested_at=now,
        deadline_at=now + partner.confirmation_deadline,
    )


def inbound_quote(partner: PartnerConfig, partner_units: int) -> InboundQuote:
    """Bank points for partner units moved in (rounded down), or the rule it breaks."""
    _require_int("partner_units", partner_units)
    rules = partner.inbound
    if not partner.enabled or not rules.enabled:
        raise InboundNotOffered(f"{partner.name} does not offer swaps into bank points")
    if partner_units < rules.min_units:
        raise SwapBelowMinimum(f"{partner_units} {partner.unit} is below {rules.min_units}")
    if partner_units > rules.max_units:
        raise SwapAboveMaximum(f"{partner_units} {partner.unit} is above {rules.max_units}")
    points = swap_saga.inbound_points(partner_units, rules.rate.num, rules.rate.den)
    return InboundQuote(partner.id, partner.rate_version, partner_units, points)


def settlement_amount_minor(partner: PartnerConfig, net_points: int) -> int:
    """Money owed for ``net_points`` at the contract price; positive: the bank pays the partner.

    ``net_points`` is outbound minus inbound points for the period (the partner's clearing
    account movement). What the bank pays rounds down, what it receives rounds up.
    """
    _require_int("net_points", net_points)
    s = partner.settlement
    if net_points >= 0:
        return swap_saga.convert_floor(net_points, s.price_minor, s.per_points)
    return -swap_saga.convert_ceil(-net_points, s.price_minor, s.per_points)

"""Request and response bodies of the API (v1). Points and money are integers, never floats."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from points.events import Reference

__all__ = [
    "ActivityLine",
    "ActivityPage",
    "Badge",
    "Balance",
    "ChallengeProgress",
    "EarningPreview",
    "Explanation",
    "MilestoneProgress",
    "PartnerLink",
    "PartnerLinkRequest",
    "PartnerLinks",
    "PartnerProgram",
    "PartnerPrograms",
    "PreviewRequest",
    "Problem",
    "Progress",
    "Referral",
    "ReferralItem",
    "ReferralStatusCount",
    "RuleLine",
    "StreakProgress",
    "Swap",
    "SwapPage",
    "SwapQuote",
    "SwapQuoteRequest",
    "SwapRequest",
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Problem(_Out):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code.")


class Balance(_Out):
    customer_id: str
    available: int = Field(description="Points the customer can spend or swap now.")
    held: int = Field(description="Points reserved by pending swaps.")
    debt: int = Field(description="Clawed-back points the wallet could not cover; paid "
                                  "down by future earnings.")
    expiring_30d: int = Field(description="Available points in lots expiring within 30 days.")
    expiring_90d: int = Field(description="Available points in lots expiring within 90 days "
                                          "(includes the 30-day figure).")
    as_of: datetime


class RuleLine(_Out):
    rule_id: str
    kind: str
    points: int | None = Field(description="Points this rule gave; null when the split per "
                                           "rule was not recorded (app activity).")
    explanation: str


class Explanation(_Out):
    summary: str
    rules: list[RuleLine] = Field(description="Rules that fired, with their explanations "
                                              "(for purchases: exactly as awarded).")
    rule_ids: list[str]
    campaign: str | None = None
    ruleset_version: str | None = None
    source_event: str | None = Field(None, description="The event behind this line.")
    note: str | None = None


class ActivityLine(_Out):
    entry_id: int
    kind: Literal["earn", "spend", "hold", "post", "void", "swap", "referral", "adjust",
                  "reverse", "clawback", "expire"]
    at: datetime
    points: int = Field(description="Change of the available balance (negative: out).")
    held_delta: int
    debt_delta: int
    explanation: Explanation


class ActivityPage(_Out):
    items: list[ActivityLine]
    next_cursor: str | None = Field(description="Pass as ?cursor= for older lines; null at "
                                                "the end.")


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    amount_minor: Annotated[int, Field(gt=0, le=10**12, strict=True,
                                       description="Purchase amount in minor units (fen).")]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    mcc: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    merchant_id: Annotated[str, Field(min_length=1, max_length=64)]
    channel: Literal["card_present", "online", "mobile", "atm", "transfer"]
    partner_id: Annotated[
        str | None, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    ] = None


class EarningPreview(_Out):
    points: int
    ruleset_version: str
    lines: list[RuleLine]
    badges_awarded: list[str]
    notes: list[str]
    explanation: str = Field(description="The same, as readable text.")


class Badge(_Out):
    badge: str
    rule_id: str | None = Field(None, description="The rule that awards it, if still live.")
    description: str | None = None


class StreakProgress(_Out):
    rule_id: str
    description: str | None
    period: Literal["day", "week"]
    length: int = Field(description="Periods needed for the bonus.")
    current: int = Field(description="Current run (0 when broken or not started).")
    counted_this_period: bool
    points: int
    badge: str | None


class ChallengeProgress(_Out):
    rule_id: str
    description: str | None
    period: str = Field(description="Current period, YYYY-MM or YYYY-Www.")
    target: int
    categories_done: list[str]
    requires_opt_in: bool
    opted_in: bool
    completed: bool
    points: int
    badge: str | None


class MilestoneProgress(_Out):
    rule_id: str
    description: str | None
    metric: Literal["purchase_count", "cumulative_spend_minor"]
    threshold: int
    current: int
    reached: bool
    points: int
    badge: str | None


class Progress(_Out):
    ruleset_version: str
    purchase_count: int
    cumulative_spend_minor: int
    badges: list[Badge]
    streaks: list[StreakProgress]
    challenges: list[ChallengeProgress]
    milestones: list[MilestoneProgress]


class ReferralStatusCount(_Out):
    status: str
    count: int


ReferralState = Literal["invited", "signed_up", "qualified", "rewarded", "clawed_back",
                        "refused"]


class ReferralItem(_Out):
    referral_id: str | None = Field(description="The referral's id; null for an onboarding "
                                                "whose code named no one (`unknown_code`, "
                                                "`invalid_code`).")
    state: ReferralState
    reason_code: str | None = Field(None, description="Why, when `refused` or `clawed_back`: "
                                                      "a stable code (docs/partners.md §6).")
    reason: str | None = Field(None, description="The same in words, for the customer.")
    signed_up_at: datetime | None = None
    qualify_by: datetime | None = Field(None, description="The referee's first purchase of at "
                                                          "least 10 CNY must come by then.")
    qualified_at: datetime | None = None
    points: int = Field(0, description="Points this referral gave you (taken back when "
                                       "`clawed_back`).")


class Referral(_Out):
    code: str = Field(description="The customer's referral code (9 characters, with a check "
                                  "character). Stored when first shown: it never changes, and "
                                  "it is the code an onboarding resolves.")
    referred: list[ReferralStatusCount] = Field(
        description="Referrals made with this customer's code, by status."
    )
    rewarded_count: int
    referred_by: str | None = Field(None, description="Status of this customer's own "
                                                      "referral, if they were referred.")
    referrals: list[ReferralItem] = Field(
        description="Referrals made with this customer's code, newest first (at most 100), "
                    "each with its state and, when refused, the reason."
    )
    own_referral: ReferralItem | None = Field(
        None, description="This customer's own referral as referee, when they joined with a "
                          "code: the one that counts, else the latest refused one."
    )


class PartnerProgram(_Out):
    id: str
    name: str
    unit: str
    enabled: bool
    rate_version: str
    outbound_rate_num: int = Field(description="Partner units per `outbound_rate_den` points.")
    outbound_rate_den: int
    min_points: int
    max_points: int
    multiple_points: int
    fee_fixed_points: int
    fee_rate_bp: int = Field(description="Percentage fee in basis points (rounded up).")
    fee_min_points: int
    fee_max_points: int | None
    inbound_enabled: bool
    inbound_rate_num: int | None
    inbound_rate_den: int | None
    daily_limit_points: int
    yearly_limit_points: int
    confirmation_deadline_s: int
    quote_ttl_s: int


class PartnerPrograms(_Out):
    timezone: str = Field(description="Time zone of the daily and yearly limits.")
    partners: list[PartnerProgram]


# --------------------------------------------------------------------------- partner exchange

PartnerId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_\-]*$",
                                 description="A partner program id (see GET /v1/partners).")]


class PartnerLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_id: PartnerId
    # Exactly what the partner contract carries (points.events.Reference, the type of
    # member_link_requested's partner_member_id): what passes here can always be sent.
    partner_member_id: Annotated[Reference, Field(
        description="The customer's member id at the partner: 1-128 characters, letters, "
                    "digits and `_ . : -`.")]
    member_name: Annotated[str | None, Field(
        None, min_length=1, max_length=200,
        description="The member's name, for partners that match names (the airline); only "
                    "its SHA-256 digest is sent to the partner.")] = None


class PartnerLink(_Out):
    partner_id: str
    partner_member_id: str
    status: Literal["pending", "linked", "rejected"] = Field(
        description="pending: the partner has not answered yet; swaps need linked.")
    reason: str | None = Field(None, description="Why the partner refused the link.")


class PartnerLinks(_Out):
    items: list[PartnerLink]


class SwapQuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_id: PartnerId
    points: Annotated[int, Field(gt=0, le=10**12, strict=True,
                                 description="Bank points to send (the fee comes on top).")]


class SwapQuote(_Out):
    quote_id: str = Field(description="Accept it with POST /v1/me/swaps before expires_at.")
    partner_id: str
    rate_version: str
    points: int
    fee_points: int = Field(description="The bank's fee, in points, on top of `points`.")
    total_points: int = Field(description="What the wallet gives: points + fee_points.")
    partner_units: int = Field(description="What the partner credits (rounded down).")
    rate_num: int = Field(description="Partner units per `rate_den` points.")
    rate_den: int
    quoted_at: datetime
    expires_at: datetime


class SwapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quote_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]


class Swap(_Out):
    swap_id: str
    partner_id: str
    points: int
    fee_points: int
    partner_units: int
    status: Literal["pending", "completed", "rejected", "expired", "cancelled"]
    reason: str = Field(description="Why it is in this status (awaiting_partner, "
                                    "partner_confirmed, partner_rejected: <code>, "
                                    "deadline_passed, cancelled_by_customer, ...).")
    requested_at: datetime
    deadline_at: datetime = Field(description="The points come back if the partner has not "
                                              "confirmed by then.")
    partner_reference: str | None = None


class SwapPage(_Out):
    items: list[Swap]
    next_cursor: str | None = Field(description="Pass as ?cursor= for older swaps; null at "
                                                "the end.")

"""The rule file: a declarative YAML document validated into a frozen :class:`RuleSet`.

A rule file names its ``version`` (recorded on every award), the earning ``currency`` and the
``timezone`` whose calendar days, weeks and months the caps, streaks and challenges count in,
the MCC groups and partners that rules refer to, optional overall ``caps``, and a list of
``rules``, each with a unique ``id`` and a ``kind``. See docs/rules.md for every kind.

Loading never half-succeeds: YAML syntax errors, unknown or missing fields and broken
references (a rule naming an MCC group or partner that does not exist) all raise
:class:`~points.rules.errors.RuleFileError`, whose message names the file, the rule id and the
field of each problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from points.nudges.declarations import NudgeSection
from points.nudges.declarations import reference_problems as nudge_reference_problems
from points.rules.errors import RuleFileError, RuleProblem

__all__ = [
    "Audience",
    "BaseRateRule",
    "Between",
    "CampaignRule",
    "Cap",
    "ChallengeRule",
    "FirstPartnerPurchaseRule",
    "Lifecycle",
    "MilestoneRule",
    "PartnerMultiplierRule",
    "PartnerSpec",
    "ReactivationRule",
    "Rule",
    "RuleSet",
    "SocialRule",
    "SpendMatch",
    "StreakRule",
    "Window",
    "load_ruleset",
    "parse_ruleset",
]

Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
PosInt = Annotated[int, Field(gt=0, le=10**12, strict=True)]
NonNegInt = Annotated[int, Field(ge=0, le=10**12, strict=True)]
Channel = Literal["card_present", "online", "mobile", "atm", "transfer", "partner"]
Status = Literal["active", "dormant", "frozen", "closed"]
#: One MCC ("5411") or an inclusive range ("3000-3299").
MccItem = Annotated[str, Field(pattern=r"^[0-9]{4}(-[0-9]{4})?$")]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cap(_Strict):
    """Upper bounds on points; each one given applies (omitted ones do not)."""

    per_transaction: PosInt | None = None
    per_day: PosInt | None = None
    per_month: PosInt | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Cap:
        if self.per_transaction is None and self.per_day is None and self.per_month is None:
            raise ValueError("give at least one of per_transaction, per_day, per_month")
        return self


class Window(_Strict):
    """A half-open time window [starts_at, ends_at), times with a zone."""

    starts_at: AwareDatetime
    ends_at: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def contains(self, moment: datetime) -> bool:
        return self.starts_at <= moment < self.ends_at


Stage = Literal["new", "active", "at_risk", "dormant", "reactivated"]


class Between(_Strict):
    """A bound on a behaviour-profile number: ``at_least`` (inclusive) and/or ``below``."""

    at_least: NonNegInt | None = None
    below: PosInt | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Between:
        if self.at_least is None and self.below is None:
            raise ValueError("give at_least, below, or both")
        if self.at_least is not None and self.below is not None and self.below <= self.at_least:
            raise ValueError("below must be greater than at_least")
        return self


class Lifecycle(_Strict):
    """Lifecycle-stage thresholds of the behaviour profile (docs/rules.md, "Behaviour profile").

    Stages, first match wins: ``new`` (no purchase yet, or the first fewer than ``new_days``
    ago), ``dormant`` (no purchase for ``dormant_days``), ``reactivated`` (a purchase ended a
    dormant gap fewer than ``reactivated_days`` ago), ``at_risk`` (purchases in the last 30
    days below ``at_risk_percent`` of the customer's own 30-day baseline over days 31-90, when
    that baseline holds at least ``baseline_min_purchases``), else ``active``.
    """

    new_days: Annotated[int, Field(gt=0, le=90, strict=True)] = 30
    #: at most 90: the profile keeps 90 days of buckets (plus lateness)
    dormant_days: Annotated[int, Field(gt=0, le=90, strict=True)] = 60
    reactivated_days: Annotated[int, Field(gt=0, le=90, strict=True)] = 30
    at_risk_percent: Annotated[int, Field(gt=0, le=100, strict=True)] = 50
    baseline_min_purchases: Annotated[int, Field(gt=0, le=10_000, strict=True)] = 2

    @model_validator(mode="after")
    def _ordered(self) -> Lifecycle:
        if self.reactivated_days > self.dormant_days:
            raise ValueError("reactivated_days must not exceed dormant_days")
        return self


class Audience(_Strict):
    """Who a rule targets; every condition given must hold (an empty audience is everyone).

    - ``segments``: the bank's segment from the customer profile (e.g. ``long_tail``);
    - ``age_below`` / ``age_at_least``: age in years, computed as the calendar year of the
      event minus the birth year (only the birth year is known); customers without a birth
      year never match an age condition;
    - ``joined_within_days``: new customers, joined fewer than N days before the event;
    - ``dormant_for_days``: no purchase for at least N days before this event (counted from
      joining for a customer who never bought anything);
    - ``statuses``: the profile status.

    Behaviour-profile conditions (points/rules/behaviour.py), measured just before the
    purchase, on its day:

    - ``lifecycle``: the customer's lifecycle stage is one of these;
    - ``purchases_30d`` / ``purchases_90d`` / ``spend_30d_minor`` / ``spend_90d_minor``:
      purchases and net spend over the rolling window, within ``{at_least, below}``;
    - ``top_mcc_group``: the MCC group the customer has bought in most is one of these;
    - ``partner_affinity``: the partner the customer has bought from most is one of these.
    """

    segments: list[Slug] | None = None
    statuses: list[Status] | None = None
    age_below: Annotated[int, Field(gt=0, le=150, strict=True)] | None = None
    age_at_least: Annotated[int, Field(ge=0, le=150, strict=True)] | None = None
    joined_within_days: Annotated[int, Field(gt=0, le=36500, strict=True)] | None = None
    dormant_for_days: Annotated[int, Field(gt=0, le=36500, strict=True)] | None = None
    lifecycle: Annotated[list[Stage], Field(min_length=1)] | None = None
    purchases_30d: Between | None = None
    purchases_90d: Between | None = None
    spend_30d_minor: Between | None = None
    spend_90d_minor: Between | None = None
    top_mcc_group: Annotated[list[Slug], Field(min_length=1)] | None = None
    partner_affinity: Annotated[list[Slug], Field(min_length=1)] | None = None


class SpendMatch(_Strict):
    """Which purchases a rule applies to; every condition given must hold."""

    mcc_groups: list[Slug] | None = None
    channels: list[Channel] | None = None
    partners: list[Slug] | None = None
    min_amount_minor: NonNegInt = 0


class _RuleBase(_Strict):
    id: Slug
    description: Annotated[str, Field(max_length=500)] = ""
    enabled: bool = True
    cap: Cap | None = None


class BaseRateRule(_RuleBase):
    """Points per spend: ``points`` for every ``per_minor`` minor units, rounded down.

    The first enabled base_rate rule (in file order) that matches a purchase fires; put the
    specific ones first and a catch-all (no ``mcc_groups``) last.
    """

    kind: Literal["base_rate"]
    mcc_groups: list[Slug] | None = None
    channels: list[Channel] | None = None
    points: NonNegInt
    per_minor: PosInt


class PartnerMultiplierRule(_RuleBase):
    """Co-brand multiplier at partner merchants: 300 means three times the base points."""

    kind: Literal["partner_multiplier"]
    partners: Annotated[list[Slug], Field(min_length=1)]
    channels: list[Channel] | None = None
    multiplier_percent: Annotated[int, Field(gt=100, le=10_000, strict=True)]


class CampaignRule(_RuleBase):
    """A time-boxed offer for an audience: extra percent of base points, or a fixed bonus."""

    kind: Literal["campaign"]
    window: Window
    audience: Audience = Audience()
    match: SpendMatch = SpendMatch()
    extra_percent: Annotated[int, Field(gt=0, le=10_000, strict=True)] | None = None
    fixed_points: PosInt | None = None
    #: Percent of customers (1 to 50) kept out of the campaign to measure its uplift: they get
    #: none of its points, and their earning records keep what they would have earned
    #: (points/rules/holdout.py, docs/rules.md "Holdouts", docs/marketing.md).
    holdout_percent: Annotated[int, Field(ge=1, le=50, strict=True)] | None = None

    @model_validator(mode="after")
    def _one_award(self) -> CampaignRule:
        if (self.extra_percent is None) == (self.fixed_points is None):
            raise ValueError("give exactly one of extra_percent, fixed_points")
        return self


class FirstPartnerPurchaseRule(_RuleBase):
    """A one-off bonus for the customer's first purchase at each of the listed partners."""

    kind: Literal["first_partner_purchase"]
    partners: Annotated[list[Slug], Field(min_length=1)]
    points: PosInt
    min_amount_minor: NonNegInt = 0


class ReactivationRule(_RuleBase):
    """A bonus for the first purchase after at least ``dormant_days`` days without one."""

    kind: Literal["reactivation"]
    dormant_days: Annotated[int, Field(gt=0, le=36500, strict=True)]
    points: PosInt
    min_amount_minor: NonNegInt = 0
    audience: Audience = Audience()


class MilestoneRule(_RuleBase):
    """Reached once: the Nth purchase or a cumulative spend; points and/or a badge."""

    kind: Literal["milestone"]
    metric: Literal["purchase_count", "cumulative_spend_minor"]
    threshold: PosInt
    points: NonNegInt = 0
    badge: Slug | None = None

    @model_validator(mode="after")
    def _awards_something(self) -> MilestoneRule:
        if self.points == 0 and self.badge is None:
            raise ValueError("a milestone must award points or a badge")
        return self


class StreakRule(_RuleBase):
    """Consecutive active days or weeks; ``grace_periods`` missed periods do not break it."""

    kind: Literal["streak"]
    period: Literal["day", "week"]
    length: Annotated[int, Field(ge=2, le=366, strict=True)]
    grace_periods: Annotated[int, Field(ge=0, le=7, strict=True)] = 0
    counts: Annotated[list[Literal["purchase", "check_in"]], Field(min_length=1)] = ["purchase"]
    min_amount_minor: NonNegInt = 0
    repeat: bool = True
    points: NonNegInt = 0
    badge: Slug | None = None

    @model_validator(mode="after")
    def _awards_something(self) -> StreakRule:
        if self.points == 0 and self.badge is None:
            raise ValueError("a streak must award points or a badge")
        return self


class SocialRule(_RuleBase):
    """Points for an app action (check-in, share, joining a challenge); a daily cap is required."""

    kind: Literal["social"]
    action: Literal["check_in", "share", "challenge_opt_in"]
    points: PosInt

    @model_validator(mode="after")
    def _daily_cap(self) -> SocialRule:
        if self.cap is None or self.cap.per_day is None:
            raise ValueError("social rules need cap.per_day (points per customer per day)")
        return self


class ChallengeRule(_RuleBase):
    """Spend in ``target`` different MCC groups within one calendar month or week."""

    kind: Literal["challenge"]
    goal: Literal["distinct_categories"] = "distinct_categories"
    target: Annotated[int, Field(ge=2, le=50, strict=True)]
    period: Literal["month", "week"] = "month"
    categories: list[Slug] | None = None
    min_amount_minor: NonNegInt = 0
    requires_opt_in: bool = False
    points: NonNegInt = 0
    badge: Slug | None = None

    @model_validator(mode="after")
    def _awards_something(self) -> ChallengeRule:
        if self.points == 0 and self.badge is None:
            raise ValueError("a challenge must award points or a badge")
        return self


Rule = Annotated[
    BaseRateRule
    | PartnerMultiplierRule
    | CampaignRule
    | FirstPartnerPurchaseRule
    | ReactivationRule
    | MilestoneRule
    | StreakRule
    | SocialRule
    | ChallengeRule,
    Field(discriminator="kind"),
]


class PartnerSpec(_Strict):
    """A partner program: its display name and the merchant ids that belong to it."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    merchant_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = []


def _parse_mcc_item(item: str) -> tuple[int, int]:
    lo, _, hi = item.partition("-")
    return int(lo), int(hi or lo)


class RuleSet(_Strict):
    """A validated rule file. Build it with :func:`load_ruleset` or :func:`parse_ruleset`."""

    version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    currency_exponent: Annotated[int, Field(ge=0, le=4, strict=True)] = 2
    timezone: str
    eligible_statuses: Annotated[list[Status], Field(min_length=1)] = ["active", "dormant"]
    mcc_groups: dict[Slug, Annotated[list[MccItem], Field(min_length=1)]] = {}
    partners: dict[Slug, PartnerSpec] = {}
    caps: Cap | None = None
    #: How late (event time) an event may arrive and still count exactly as in order: streaks
    #: keep this much of their history (see docs/rules.md, "Late events").
    lateness_hours: Annotated[int, Field(ge=72, le=720, strict=True)] = 72
    #: behaviour-profile lifecycle thresholds (defaults when the section is absent)
    lifecycle: Lifecycle = Lifecycle()
    rules: Annotated[list[Rule], Field(min_length=1)]
    #: messages to customers at moments that matter (points/nudges, docs/rules.md "Nudges")
    nudges: NudgeSection = NudgeSection()

    _zone: ZoneInfo = PrivateAttr()
    _mcc_ranges: tuple[tuple[int, int, str], ...] = PrivateAttr()
    _merchant_partner: dict[str, str] = PrivateAttr()
    _by_id: dict[str, Any] = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def model_post_init(self, context: Any, /) -> None:
        self._zone = ZoneInfo(self.timezone)
        ranges = []
        for group, items in self.mcc_groups.items():
            for item in items:
                lo, hi = _parse_mcc_item(item)
                ranges.append((lo, hi, group))
        self._mcc_ranges = tuple(sorted(ranges))
        self._merchant_partner = {
            merchant: partner_id
            for partner_id, spec in self.partners.items()
            for merchant in spec.merchant_ids
        }
        self._by_id = {rule.id: rule for rule in self.rules}

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def mcc_group(self, mcc: str | None) -> str | None:
        """The MCC group a merchant category code belongs to, or None."""
        if mcc is None or not mcc.isdigit():
            return None
        code = int(mcc)
        for lo, hi, group in self._mcc_ranges:
            if lo <= code <= hi:
                return group
        return None

    def partner_of(self, merchant_id: str, declared: str | None) -> str | None:
        """The partner a purchase counts for: the one declared on the event, else by merchant."""
        if declared is not None:
            return declared
        return self._merchant_partner.get(merchant_id)

    def rule(self, rule_id: str) -> Rule | None:
        found: Rule | None = self._by_id.get(rule_id)
        return found

    def active_rules(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.enabled]


# ---------------------------------------------------------------------------------- loading


def load_ruleset(path: str | Path) -> RuleSet:
    """Read and validate a rule file; raise RuleFileError naming file, rule id and field."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(source, [RuleProblem(None, None, f"cannot read: {exc}")]) from exc
    return parse_ruleset(text, source=source)


def parse_ruleset(text: str, *, source: str = "<string>") -> RuleSet:
    """Validate rule-file text (YAML); ``source`` names it in error messages."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError(
            source, [RuleProblem(None, None, f"invalid YAML{where}: {problem}")]
        ) from exc
    if not isinstance(raw, dict):
        raise RuleFileError(source, [RuleProblem(None, None, "the file must be a YAML mapping")])
    try:
        ruleset = RuleSet.model_validate(raw)
    except ValidationError as exc:
        raise RuleFileError(source, _problems_from(exc, raw)) from exc
    problems = _reference_problems(ruleset)
    if problems:
        raise RuleFileError(source, problems)
    return ruleset


def _rule_label(raw: Mapping[str, Any], index: int) -> str:
    rules = raw.get("rules")
    if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
        rule_id = rules[index].get("id")
        if isinstance(rule_id, str) and rule_id:
            return rule_id
    return f"#{index + 1}"


def _nudge_label(raw: Mapping[str, Any], index: int) -> str:
    section = raw.get("nudges")
    messages = section.get("messages") if isinstance(section, dict) else None
    if isinstance(messages, list) and index < len(messages) and isinstance(messages[index], dict):
        nudge_id = messages[index].get("id")
        if isinstance(nudge_id, str) and nudge_id:
            return nudge_id
    return f"#{index + 1}"


def _problems_from(exc: ValidationError, raw: Mapping[str, Any]) -> list[RuleProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc: Sequence[int | str] = error["loc"]
        rule_id: str | None = None
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rule_id = _rule_label(raw, loc[1])
            rest = list(loc[2:])
            field: str | None
            if error["type"].startswith("union_tag") or not rest:
                field = "kind"
            else:
                # rest[0] is the kind; a model-level check ("give exactly one of ...") has
                # nothing after it and names no single field.
                field = ".".join(str(part) for part in rest[1:]) or None
        elif len(loc) >= 3 and loc[:2] == ("nudges", "messages") and isinstance(loc[2], int):
            # name the nudge by its id, as rules are: nudges.<id>.<field>
            label = _nudge_label(raw, loc[2])
            # loc[3] is the kind; a union tag error names the kind itself
            tail = ["kind"] if error["type"].startswith("union_tag") else [
                str(part) for part in loc[4:]
            ]
            field = ".".join(["nudges", label, *tail])
        else:
            field = ".".join(str(part) for part in loc) or None
        message = str(error["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append(RuleProblem(rule_id, field, message))
    return problems


def _reference_problems(ruleset: RuleSet) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    seen: set[str] = set()
    for rule in ruleset.rules:
        if rule.id in seen:
            problems.append(RuleProblem(rule.id, "id", "duplicate rule id"))
        seen.add(rule.id)

    occupied: list[tuple[int, int, str]] = []
    for group, items in ruleset.mcc_groups.items():
        for item in items:
            lo, hi = _parse_mcc_item(item)
            if lo > hi:
                problems.append(
                    RuleProblem(None, f"mcc_groups.{group}", f"range {item!r} is backwards")
                )
                continue
            for other_lo, other_hi, other in occupied:
                if lo <= other_hi and other_lo <= hi:
                    problems.append(
                        RuleProblem(
                            None,
                            f"mcc_groups.{group}",
                            f"{item!r} overlaps group {other!r}; an MCC belongs to one group",
                        )
                    )
            occupied.append((lo, hi, group))

    groups = set(ruleset.mcc_groups)
    partners = set(ruleset.partners)

    def check(
        rule_id: str, field: str, names: list[str] | None, known: set[str], what: str
    ) -> None:
        for name in names or []:
            if name not in known:
                problems.append(
                    RuleProblem(
                        rule_id,
                        field,
                        f"unknown {what} {name!r} (known: {', '.join(sorted(known)) or 'none'})",
                    )
                )

    for rule in ruleset.rules:
        if isinstance(rule, BaseRateRule):
            check(rule.id, "mcc_groups", rule.mcc_groups, groups, "MCC group")
        elif isinstance(rule, PartnerMultiplierRule | FirstPartnerPurchaseRule):
            check(rule.id, "partners", rule.partners, partners, "partner")
        elif isinstance(rule, CampaignRule):
            check(rule.id, "match.mcc_groups", rule.match.mcc_groups, groups, "MCC group")
            check(rule.id, "match.partners", rule.match.partners, partners, "partner")
        if isinstance(rule, CampaignRule | ReactivationRule):
            audience = rule.audience
            check(rule.id, "audience.top_mcc_group", audience.top_mcc_group, groups, "MCC group")
            check(rule.id, "audience.partner_affinity", audience.partner_affinity, partners,
                  "partner")
        elif isinstance(rule, ChallengeRule):
            check(rule.id, "categories", rule.categories, groups, "MCC group")
            available = len(rule.categories) if rule.categories is not None else len(groups)
            if rule.target > available:
                problems.append(
                    RuleProblem(
                        rule.id,
                        "target",
                        f"needs {rule.target} categories but only {available} can count",
                    )
                )
    for field, message in nudge_reference_problems(
        ruleset.nudges,
        {rule.id: rule.kind for rule in ruleset.rules},
        {rule.id: rule.period for rule in ruleset.rules if isinstance(rule, StreakRule)},
        partners,
    ):
        problems.append(RuleProblem(None, field, message))
    return problems

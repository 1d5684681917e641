"""A reference calculator of what docs/rules.md promises a customer, written from the docs alone.

It reads the rule file (rules/default.yaml) with pyyaml and follows docs/rules.md sentence by
sentence; it imports nothing from ``points``. It is deliberately plain and slow: one customer at
a time, events in **event-time** order (docs/rules.md "days, weeks and months are counted on
this calendar"; DESIGN "every time-based rule is decided by the event's occurred_at"), each
event id counted once (a producer's duplicate changes nothing).

Where the docs are silent the choice made here is written down in /work/notes/model-findings.md
("model reading" entries) and marked ``# reading:`` below.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

__all__ = ["Outcome", "RuleFile", "calculate", "load_rule_file"]

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "rules" / "default.yaml"
OVERALL = "*"  # the counter key of the overall caps


@dataclass(frozen=True)
class RuleFile:
    """The parts of a rule file the docs define, as plain data."""

    currency: str
    zone: ZoneInfo
    eligible_statuses: frozenset[str]
    mcc_groups: dict[str, list[str]]
    partner_merchants: dict[str, str]  # merchant id -> partner id
    caps: dict[str, int] | None
    rules: list[dict[str, Any]]  # in file order, disabled rules dropped

    def group_of(self, mcc: str | None) -> str | None:
        """The MCC group an MCC belongs to ("3000-3299" is an inclusive range)."""
        if mcc is None:
            return None
        for name, codes in self.mcc_groups.items():
            for code in codes:
                if "-" in code:
                    low, high = code.split("-")
                    if int(low) <= int(mcc) <= int(high):
                        return name
                elif code == mcc:
                    return name
        return None

    def rule(self, rule_id: str) -> dict[str, Any] | None:
        return next((r for r in self.rules if r["id"] == rule_id), None)


def load_rule_file(path: Path = DEFAULT_RULES) -> RuleFile:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    merchants = {
        merchant: partner_id
        for partner_id, partner in (data.get("partners") or {}).items()
        for merchant in partner.get("merchant_ids", [])
    }
    return RuleFile(
        currency=data["currency"],
        zone=ZoneInfo(data["timezone"]),
        eligible_statuses=frozenset(data["eligible_statuses"]),
        mcc_groups={k: [str(c) for c in v] for k, v in (data.get("mcc_groups") or {}).items()},
        partner_merchants=merchants,
        caps=data.get("caps"),
        rules=[r for r in data["rules"] if r.get("enabled", True)],
    )


# ------------------------------------------------------------------------------- the customer


@dataclass
class Line:
    rule_id: str
    kind: str
    points: int
    policy: str  # proportional | full_refund | milestone | kept


@dataclass
class PurchaseRecord:
    amount: int
    partner: str | None
    lines: list[Line]
    refunded: int = 0
    clawed: dict[str, int] = field(default_factory=dict)


@dataclass
class Streak:
    last_period: int
    length: int


@dataclass
class ChallengeProgress:
    opted_in: bool = False
    categories: set[str] = field(default_factory=set)
    completed: bool = False


@dataclass
class Customer:
    """Everything docs/rules.md says the engine remembers "for next time"."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))  # the rule file's
    segment: str = "unknown"
    joined_at: datetime | None = None
    birth_year: int | None = None
    status: str = "active"
    purchase_count: int = 0
    spend: int = 0
    last_purchase_day: date | None = None
    partners_seen: set[str] = field(default_factory=set)
    milestones: dict[str, int] = field(default_factory=dict)  # rule id -> points it awarded
    badges: set[str] = field(default_factory=set)
    streaks: dict[str, Streak] = field(default_factory=dict)
    challenges: dict[tuple[str, object], ChallengeProgress] = field(default_factory=dict)
    counters: Counter[tuple[str, str, object]] = field(default_factory=Counter)
    records: dict[str, PurchaseRecord] = field(default_factory=dict)


@dataclass
class Outcome:
    """The balance the docs promise (earned minus clawed back; negative means debt)."""

    balance: int = 0
    earned: int = 0
    clawed_back: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    badges: set[str] = field(default_factory=set)
    # refunds that took back a milestone reached on another purchase (issue 12, finding 2)
    milestones_taken_across: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------- entry point


def calculate(rules: RuleFile, messages: list[dict[str, Any]]) -> Outcome:
    """One customer's outcome from the wire messages they caused, in any arrival order."""
    customer = Customer(zone=rules.zone)
    outcome = Outcome()
    seen: set[str] = set()
    unique: list[tuple[int, dict[str, Any]]] = []
    for arrival, message in enumerate(messages):
        if message["event_id"] in seen:
            continue  # a producer's duplicate: at-least-once delivery, counted once
        seen.add(message["event_id"])
        unique.append((arrival, message))
    for _, profile in unique:
        # reading: the generator sends the profile first; a compacted topic keeps the latest.
        if profile["event_type"] in ("customer_profile", "customer_onboarded"):
            customer.segment = profile["segment"]
            customer.joined_at = _time(profile["joined_at"])
            customer.birth_year = profile.get("birth_year")
            customer.status = profile.get("status", "active")
    events = [
        (m, a)
        for a, m in unique
        if m["event_type"] not in ("customer_profile", "customer_onboarded")
    ]
    events.sort(key=lambda pair: (_time(pair[0]["occurred_at"]), pair[1]))
    for message, _ in events:
        kind = message["event_type"]
        if kind == "purchase":
            _purchase(rules, customer, outcome, message)
        elif kind in ("refund", "reversal"):
            _refund(rules, customer, outcome, message)
        elif kind in ("check_in", "share", "challenge_opt_in"):
            _activity(rules, customer, outcome, message)
    outcome.badges = set(customer.badges)
    return outcome


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _week(day: date) -> int:
    """Weeks run Monday to Sunday: consecutive weeks have consecutive numbers."""
    return (day.toordinal() - day.weekday()) // 7


# ------------------------------------------------------------------------------- purchases


def _purchase(rules: RuleFile, c: Customer, out: Outcome, p: dict[str, Any]) -> None:
    at = _time(p["occurred_at"])
    day = at.astimezone(rules.zone).date()
    amount = int(p["amount_minor"])
    group = rules.group_of(p["mcc"])
    channel = p["channel"]
    partner = p.get("partner_id") or rules.partner_merchants.get(p["merchant_id"])
    if c.status not in rules.eligible_statuses or p["currency"] != rules.currency:
        # reading: the generator sends neither; nothing is earned, nothing remembered.
        return
    idle_days = _idle_days(c, day)
    count_after = c.purchase_count + 1
    spend_after = c.spend + amount

    candidates: list[tuple[int, dict[str, Any], int, str]] = []
    base_points = 0
    base_rule = next(
        (
            (i, r)
            for i, r in enumerate(rules.rules)
            if r["kind"] == "base_rate"
            and ("mcc_groups" not in r or group in r["mcc_groups"])
            and ("channels" not in r or channel in r["channels"])
        ),
        None,
    )
    if base_rule is not None:
        index, rule = base_rule
        base_points = amount * rule["points"] // rule["per_minor"]  # rounded down
        candidates.append((index, rule, base_points, "proportional"))

    reached: list[str] = []
    for index, rule in enumerate(rules.rules):
        kind = rule["kind"]
        if kind == "partner_multiplier" and partner in rule["partners"]:
            extra = base_points * (rule["multiplier_percent"] - 100) // 100
            candidates.append((index, rule, extra, "proportional"))
        elif kind == "first_partner_purchase" and partner in rule["partners"]:
            if partner not in c.partners_seen and amount >= rule.get("min_amount_minor", 0):
                candidates.append((index, rule, rule["points"], "full_refund"))
        elif kind == "campaign" and _campaign_applies(rules, c, rule, p, at, day, idle_days):
            if _held_out(rule, p["customer_id"]):
                continue  # "Holdouts": none of the campaign's points
            if "extra_percent" in rule:
                candidates.append(
                    (index, rule, base_points * rule["extra_percent"] // 100, "proportional")
                )
            else:
                candidates.append((index, rule, rule["fixed_points"], "full_refund"))
        elif kind == "reactivation":
            if (
                idle_days >= rule["dormant_days"]
                and amount >= rule.get("min_amount_minor", 0)
                and _audience(c, rule.get("audience") or {}, day, idle_days)
            ):
                candidates.append((index, rule, rule["points"], "full_refund"))
        elif kind == "milestone" and rule["id"] not in c.milestones:
            value = count_after if rule["metric"] == "purchase_count" else spend_after
            if value >= rule["threshold"]:
                reached.append(rule["id"])
                candidates.append((index, rule, rule.get("points", 0), "milestone"))
        elif kind == "streak" and "purchase" in rule["counts"]:
            if amount >= rule.get("min_amount_minor", 0) and _streak_completes(rule, c, day):
                candidates.append((index, rule, rule.get("points", 0), "full_refund"))
        elif kind == "challenge" and _challenge_completes(rule, c, day, group, amount):
            candidates.append((index, rule, rule.get("points", 0), "full_refund"))

    lines = _capped(rules, c, candidates, day)
    for line in lines:
        if line.rule_id in reached:
            c.milestones[line.rule_id] = line.points
    c.purchase_count = count_after
    c.spend = spend_after
    c.last_purchase_day = day if c.last_purchase_day is None else max(c.last_purchase_day, day)
    if partner is not None:
        c.partners_seen.add(partner)
    c.records[p["event_id"]] = PurchaseRecord(amount, partner, lines)
    _post(out, c, candidates, lines)


def _held_out(rule: dict[str, Any], customer_id: str) -> bool:
    """docs/rules.md "Holdouts": bucket = 64-bit BLAKE2b of the customer id keyed by the
    campaign id, big-endian, modulo 10,000; held out below holdout_percent x 100."""
    percent: int | None = rule.get("holdout_percent")
    if percent is None:
        return False
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8, key=rule["id"].encode())
    return int.from_bytes(digest.digest(), "big") % 10_000 < percent * 100


def _idle_days(c: Customer, day: date) -> int:
    """Days without a purchase, "counted from joining for a customer who never bought"."""
    # reading: a refunded purchase still was a purchase (the customer came to the shop).
    reference = c.last_purchase_day
    if reference is None:
        if c.joined_at is None:
            return 0  # reading: nobody is dormant without a join date (see findings)
        reference = c.joined_at.astimezone(c.zone).date()
    return max(0, (day - reference).days)


def _campaign_applies(
    rules: RuleFile,
    c: Customer,
    rule: dict[str, Any],
    p: dict[str, Any],
    at: datetime,
    day: date,
    idle_days: int,
) -> bool:
    window = rule["window"]
    # starts_at included, ends_at excluded
    if not (_time(window["starts_at"]) <= at < _time(window["ends_at"])):
        return False
    match = rule.get("match") or {}
    group = rules.group_of(p["mcc"])
    partner = p.get("partner_id") or rules.partner_merchants.get(p["merchant_id"])
    if "mcc_groups" in match and group not in match["mcc_groups"]:
        return False
    if "channels" in match and p["channel"] not in match["channels"]:
        return False
    if "partners" in match and partner not in match["partners"]:
        return False
    if int(p["amount_minor"]) < match.get("min_amount_minor", 0):
        return False
    return _audience(c, rule.get("audience") or {}, day, idle_days)


def _audience(c: Customer, audience: dict[str, Any], day: date, idle_days: int) -> bool:
    """All given conditions hold; none means everyone."""
    age = None if c.birth_year is None else day.year - c.birth_year  # event year - birth year
    if "age_below" in audience and (age is None or age >= audience["age_below"]):
        return False
    if "age_at_least" in audience and (age is None or age < audience["age_at_least"]):
        return False
    if "joined_within_days" in audience:
        if c.joined_at is None:
            return False
        # reading: "within 90 days" = joined on one of the 90 calendar days up to today
        joined = c.joined_at.astimezone(c.zone).date()
        if (day - joined).days >= audience["joined_within_days"]:
            return False
    if "dormant_for_days" in audience and idle_days < audience["dormant_for_days"]:
        return False
    if "segments" in audience and c.segment not in audience["segments"]:
        return False
    return not ("statuses" in audience and c.status not in audience["statuses"])


def _streak_completes(rule: dict[str, Any], c: Customer, day: date) -> bool:
    """Count ``day``'s period in the streak; True when that completes `length` periods.

    reading: each gap of at most ``grace_periods`` missed periods between two active ones is
    forgiven; missed periods do not count toward the length; the bonus comes every `length`
    active periods (repeat) or once.
    """
    period = day.toordinal() if rule["period"] == "day" else _week(day)
    current = c.streaks.get(rule["id"])
    if current is not None and period <= current.last_period:
        return False  # this period already counted (events are in event-time order)
    grace = rule.get("grace_periods", 0)
    if current is not None and period - current.last_period <= 1 + grace:
        length = current.length + 1
    else:
        length = 1
    c.streaks[rule["id"]] = Streak(period, length)
    periods: int = rule["length"]
    if rule.get("repeat", True):
        return length % periods == 0
    return length == periods


def _challenge_key(rule: dict[str, Any], day: date) -> object:
    if rule.get("period", "month") == "month":
        return (day.year, day.month)
    return day.isocalendar()[:2]


def _challenge_completes(
    rule: dict[str, Any], c: Customer, day: date, group: str | None, amount: int
) -> bool:
    progress = c.challenges.setdefault((rule["id"], _challenge_key(rule, day)), ChallengeProgress())
    if progress.completed or group is None or amount < rule.get("min_amount_minor", 0):
        return False
    if "categories" in rule and group not in rule["categories"]:
        return False
    if rule.get("requires_opt_in") and not progress.opted_in:
        return False
    progress.categories.add(group)
    if len(progress.categories) >= rule["target"]:
        progress.completed = True  # paid once per period
        return True
    return False


# ------------------------------------------------------------------------------- activity

ACTION_OF = {"check_in": "check_in", "share": "share", "challenge_opt_in": "challenge_opt_in"}


def _activity(rules: RuleFile, c: Customer, out: Outcome, a: dict[str, Any]) -> None:
    at = _time(a["occurred_at"])
    day = at.astimezone(rules.zone).date()
    if c.status not in rules.eligible_statuses:
        return
    kind = a["event_type"]
    candidates: list[tuple[int, dict[str, Any], int, str]] = []
    for index, rule in enumerate(rules.rules):
        if rule["kind"] == "social" and rule["action"] == ACTION_OF[kind]:
            candidates.append((index, rule, rule["points"], "kept"))
        elif rule["kind"] == "streak" and kind == "check_in" and "check_in" in rule["counts"]:
            if _streak_completes(rule, c, day):
                candidates.append((index, rule, rule.get("points", 0), "kept"))
        elif (
            rule["kind"] == "challenge"
            and kind == "challenge_opt_in"
            and a["challenge_id"] == rule["id"]
        ):
            key = (rule["id"], _challenge_key(rule, day))
            c.challenges.setdefault(key, ChallengeProgress()).opted_in = True
    # docs/rules.md "Caps": the overall caps limit purchases; app activity only its own caps.
    lines = _capped(rules, c, candidates, day, overall=False)
    _post(out, c, candidates, lines)


# ------------------------------------------------------------------------------- caps


def _capped(
    rules: RuleFile,
    c: Customer,
    candidates: list[tuple[int, dict[str, Any], int, str]],
    day: date,
    overall: bool = True,
) -> list[Line]:
    """Each rule's own cap, then (``overall``: a purchase) the overall caps, which count
    purchases' points only; later lines are cut first."""
    candidates.sort(key=lambda cand: cand[0])  # file order
    month = (day.year, day.month)
    overall_room = None
    if overall and rules.caps is not None:
        overall_room = _room(rules.caps, c, OVERALL, day, month)
    lines: list[Line] = []
    for _, rule, points, policy in candidates:
        cap = rule.get("cap")
        if cap is not None:
            points = min(points, _room(cap, c, rule["id"], day, month))
        if overall_room is not None:
            points = min(points, overall_room)
            overall_room -= points
        points = max(points, 0)
        c.counters[(rule["id"], "d", day)] += points
        c.counters[(rule["id"], "m", month)] += points
        if overall:
            c.counters[(OVERALL, "d", day)] += points
            c.counters[(OVERALL, "m", month)] += points
        lines.append(Line(rule["id"], rule["kind"], points, policy))
    return lines


def _room(cap: dict[str, int], c: Customer, key: str, day: date, month: object) -> int:
    rooms = []
    if "per_transaction" in cap:
        rooms.append(cap["per_transaction"])
    if "per_day" in cap:
        rooms.append(cap["per_day"] - c.counters[(key, "d", day)])
    if "per_month" in cap:
        rooms.append(cap["per_month"] - c.counters[(key, "m", month)])
    return max(0, min(rooms))


def _post(
    out: Outcome,
    c: Customer,
    candidates: list[tuple[int, dict[str, Any], int, str]],
    lines: list[Line],
) -> None:
    for line in lines:
        out.balance += line.points
        out.earned += line.points
        out.by_rule[line.rule_id] += line.points
    for _, rule, _, _ in candidates:
        if rule.get("badge"):
            c.badges.add(rule["badge"])


# ------------------------------------------------------------------------------- refunds


def _refund(rules: RuleFile, c: Customer, out: Outcome, r: dict[str, Any]) -> None:
    record = c.records.get(r["original_event_id"])
    if record is None:
        return  # reading: a refund of a purchase never seen takes nothing back
    remaining = record.amount - record.refunded
    # "a reversal counts as a full refund of whatever had not been refunded yet"
    this = remaining if r["event_type"] == "reversal" else min(int(r["amount_minor"]), remaining)
    if this <= 0:
        return
    record.refunded += this
    full = record.refunded == record.amount
    taken: list[tuple[str, int]] = []
    for line in record.lines:
        before = record.clawed.get(line.rule_id, 0)
        if line.policy == "proportional":
            # in proportion to the amount refunded, rounded up; never more than earned in all
            target = -(-line.points * record.refunded // record.amount)
        elif line.policy == "full_refund":
            target = line.points if full else 0
        else:
            continue  # milestones are re-checked below; app activity is never clawed back
        if target > before:
            record.clawed[line.rule_id] = target
            taken.append((line.rule_id, target - before))
            if line.kind == "first_partner_purchase" and full and record.partner is not None:
                c.partners_seen.discard(record.partner)  # can be earned again later
    c.spend = max(0, c.spend - this)
    if full:
        c.purchase_count = max(0, c.purchase_count - 1)
    for rule_id, awarded in sorted(c.milestones.items()):
        rule = rules.rule(rule_id)
        if rule is None:
            continue
        value = c.purchase_count if rule["metric"] == "purchase_count" else c.spend
        if value < rule["threshold"]:
            del c.milestones[rule_id]
            if awarded:
                taken.append((rule_id, awarded))
                if all(line.rule_id != rule_id for line in record.lines):
                    out.milestones_taken_across.append(f"{r['event_id']} takes back {rule_id}")
            if rule.get("badge"):
                c.badges.discard(rule["badge"])
    for rule_id, points in taken:
        out.balance -= points
        out.clawed_back += points
        out.by_rule[rule_id] -= points

"""Builders shared by the rules tests: a small rule-set header, events, profiles, a runner."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from datetime import datetime
from itertools import count

from points.events import ChallengeOptIn, CheckIn, Purchase, Refund, Reversal, Share
from points.rules import EarningEvent, Evaluation, Profile, RuleSet, RuleState, evaluate
from points.rules.ruleset import parse_ruleset

HEADER = """\
version: "test-1"
currency: CNY
timezone: Asia/Shanghai
mcc_groups:
  groceries: ["5411"]
  dining: ["5812", "5814"]
  ride_hailing: ["4121"]
  travel: ["3000-3299", "4511"]
  ecommerce: ["5311"]
partners:
  ridehail: {name: Ride, merchant_ids: [M-RIDE]}
  eshop: {name: Shop, merchant_ids: [M-SHOP]}
"""

_ids = count(1)


def make_ruleset(rules: str, *, top: str = "") -> RuleSet:
    """A rule set from the shared header, optional top-level YAML, and a YAML list of rules."""
    body = textwrap.indent(textwrap.dedent(rules).strip("\n"), "  ")
    return parse_ruleset(HEADER + textwrap.dedent(top) + "rules:\n" + body + "\n", source="t.yaml")


def at(text: str) -> datetime:
    """A zone-aware time; bare dates and times are read in Beijing time (+08:00)."""
    if len(text) == 10:
        text += "T12:00:00"
    if "+" not in text[10:] and not text.endswith("Z"):
        text += "+08:00"
    return datetime.fromisoformat(text)


def purchase(
    amount_minor: int,
    *,
    mcc: str = "5411",
    when: str = "2026-11-27T10:00:00",
    merchant_id: str = "M-1",
    channel: str = "card_present",
    partner_id: str | None = None,
    currency: str = "CNY",
    event_id: str | None = None,
    customer_id: str = "c-1",
) -> Purchase:
    return Purchase.model_validate(
        {
            "event_type": "purchase",
            "event_id": event_id or f"p-{next(_ids)}",
            "customer_id": customer_id,
            "amount_minor": amount_minor,
            "currency": currency,
            "mcc": mcc,
            "merchant_id": merchant_id,
            "channel": channel,
            "occurred_at": at(when),
            "partner_id": partner_id,
        }
    )


def refund(original: Purchase, amount_minor: int, *, when: str = "2026-12-01") -> Refund:
    return Refund.model_validate(
        {
            **original.model_dump(exclude={"event_type", "partner_id"}),
            "event_type": "refund",
            "event_id": f"r-{next(_ids)}",
            "amount_minor": amount_minor,
            "original_event_id": original.event_id,
            "occurred_at": at(when),
        }
    )


def reversal(original: Purchase, *, when: str = "2026-12-01") -> Reversal:
    return Reversal.model_validate(
        {
            **original.model_dump(exclude={"event_type", "partner_id"}),
            "event_type": "reversal",
            "event_id": f"v-{next(_ids)}",
            "original_event_id": original.event_id,
            "occurred_at": at(when),
        }
    )


def check_in(when: str, customer_id: str = "c-1") -> CheckIn:
    return CheckIn(
        event_type="check_in",
        event_id=f"ci-{next(_ids)}",
        customer_id=customer_id,
        occurred_at=at(when),
    )


def share(when: str, customer_id: str = "c-1") -> Share:
    return Share(
        event_type="share",
        event_id=f"sh-{next(_ids)}",
        customer_id=customer_id,
        occurred_at=at(when),
        network="wechat",
        content_id="offer-1",
    )


def opt_in(challenge_id: str, when: str, customer_id: str = "c-1") -> ChallengeOptIn:
    return ChallengeOptIn(
        event_type="challenge_opt_in",
        event_id=f"oi-{next(_ids)}",
        customer_id=customer_id,
        occurred_at=at(when),
        challenge_id=challenge_id,
    )


def profile(
    *,
    segment: str = "mass",
    joined: str = "2020-01-01",
    birth_year: int | None = 1985,
    status: str = "active",
    customer_id: str = "c-1",
) -> Profile:
    return Profile(
        customer_id=customer_id,
        segment=segment,
        joined_at=at(joined),
        status=status,
        birth_year=birth_year,
    )


def run(
    ruleset: RuleSet,
    events: Iterable[EarningEvent],
    who: Profile | None = None,
    state: RuleState | None = None,
) -> list[Evaluation]:
    """Evaluate events in order, threading the state as the stream worker does."""
    who = who or profile()
    state = state or RuleState()
    results = []
    for event in events:
        result = evaluate(ruleset, event, who, state, now=event.occurred_at)
        state = result.state
        results.append(result)
    return results


def points_by_rule(result: Evaluation) -> dict[str, int]:
    return {line.rule_id: line.points for line in result.lines}

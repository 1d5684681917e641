"""Backtest: replay recorded events through a candidate and the current rule set, and compare.

Usage::

    python -m points.rules.backtest --candidate rules/new.yaml --current rules/default.yaml \\
        --events recorded.jsonl [--profiles customers.jsonl] [--cost-per-point-minor 1] \\
        [--per-points 1] [--json]

The events file holds one message per line, as published: ``bank.transactions``,
``customer.activity`` and ``bank.customers`` messages (a profile applies to the events after
it), and partner purchases. Each rule set starts every customer from an empty rule state and
sees the events in file order, with refunds clawed back exactly as in production. Nothing is
written anywhere. Exit codes: 0 done, 2 a file could not be read or validated. The command is
kept because the docs name it; it runs :func:`points.cli.legacy.backtest_main`, the code of
``points-ledger rules backtest``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from points.events import (
    ChallengeOptIn,
    CheckIn,
    CustomerOnboarded,
    CustomerProfile,
    PartnerPurchase,
    Purchase,
    Refund,
    Reversal,
    Share,
    any_event_adapter,
)
from points.rules.clawback import clawback
from points.rules.engine import evaluate
from points.rules.records import EarningRecord, Profile
from points.rules.ruleset import RuleSet
from points.rules.state import RuleState

__all__ = [
    "BacktestReport",
    "PointCost",
    "RulesetOutcome",
    "backtest",
    "main",
    "read_events",
]


@dataclass(frozen=True, slots=True)
class PointCost:
    """What a point costs the bank: ``minor`` minor units per ``per_points`` points."""

    minor: int = 1
    per_points: int = 1

    def __post_init__(self) -> None:
        if self.minor < 0 or self.per_points <= 0:
            raise ValueError("cost must be non-negative and per_points positive")

    def of(self, points: int) -> int:
        """Cost in minor units, rounded up so a budget is never under-stated."""
        if points <= 0:
            return 0
        return -(-points * self.minor // self.per_points)


@dataclass(frozen=True)
class RulesetOutcome:
    """What one rule set would have done over the recorded events."""

    version: str
    points_awarded: int
    points_clawed_back: int
    cost_minor: int
    customers_earning: int
    per_rule: Mapping[str, int]  # net points per rule id (awarded minus clawed back)
    per_customer: Mapping[str, int]  # net points per customer
    badges_awarded: int

    @property
    def net_points(self) -> int:
        return self.points_awarded - self.points_clawed_back

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "points_awarded": self.points_awarded,
            "points_clawed_back": self.points_clawed_back,
            "net_points": self.net_points,
            "cost_minor": self.cost_minor,
            "customers_earning": self.customers_earning,
            "badges_awarded": self.badges_awarded,
            "per_rule": dict(sorted(self.per_rule.items())),
        }


@dataclass(frozen=True)
class BacktestReport:
    candidate: RulesetOutcome
    current: RulesetOutcome
    events_read: int
    events_evaluated: int
    events_skipped: Mapping[str, int]  # reason -> count
    cost: PointCost
    profiles_applied: int = 0

    @property
    def net_points_difference(self) -> int:
        return self.candidate.net_points - self.current.net_points

    @property
    def cost_difference_minor(self) -> int:
        return self.candidate.cost_minor - self.current.cost_minor

    @property
    def customers_changed(self) -> int:
        """Customers whose net points differ between the two rule sets."""
        ids = set(self.candidate.per_customer) | set(self.current.per_customer)
        return sum(
            1
            for cid in ids
            if self.candidate.per_customer.get(cid, 0) != self.current.per_customer.get(cid, 0)
        )

    def rule_rows(self) -> list[tuple[str, int, int, int]]:
        """(rule id, candidate net, current net, difference), sorted by rule id."""
        ids = sorted(set(self.candidate.per_rule) | set(self.current.per_rule))
        rows = []
        for rule_id in ids:
            cand = self.candidate.per_rule.get(rule_id, 0)
            cur = self.current.per_rule.get(rule_id, 0)
            rows.append((rule_id, cand, cur, cand - cur))
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate.to_json(),
            "current": self.current.to_json(),
            "difference": {
                "net_points": self.net_points_difference,
                "cost_minor": self.cost_difference_minor,
                "customers_changed": self.customers_changed,
                "per_rule": {rule_id: diff for rule_id, _, _, diff in self.rule_rows()},
            },
            "events_read": self.events_read,
            "events_evaluated": self.events_evaluated,
            "events_skipped": dict(sorted(self.events_skipped.items())),
            "profiles_applied": self.profiles_applied,
            "cost_per_point": {"minor": self.cost.minor, "per_points": self.cost.per_points},
        }

    def render(self) -> str:
        """A plain-text table for people."""
        c, k = self.candidate, self.current
        rows: list[tuple[str, str, str, str]] = [
            ("", f"candidate {c.version}", f"current {k.version}", "difference"),
            ("points awarded", *_trio(c.points_awarded, k.points_awarded)),
            ("points clawed back", *_trio(c.points_clawed_back, k.points_clawed_back)),
            ("net points", *_trio(c.net_points, k.net_points)),
            ("cost (minor units)", *_trio(c.cost_minor, k.cost_minor)),
            ("customers earning", *_trio(c.customers_earning, k.customers_earning)),
            ("badges awarded", *_trio(c.badges_awarded, k.badges_awarded)),
        ]
        rows.append(("", "", "", ""))
        rows.append(("net points by rule", "", "", ""))
        for rule_id, cand, cur, diff in self.rule_rows():
            rows.append((f"  {rule_id}", str(cand), str(cur), _signed(diff)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            ).rstrip()
            for row in rows
        ]
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.events_skipped.items()))
        lines.append("")
        lines.append(f"customers whose points change: {self.customers_changed}")
        lines.append(
            f"events read: {self.events_read}, evaluated: {self.events_evaluated}, "
            f"profiles applied: {self.profiles_applied}"
            + (f", skipped: {skipped}" if skipped else "")
        )
        lines.append(f"cost per point: {self.cost.minor} minor units per {self.cost.per_points}")
        return "\n".join(lines)


def _signed(value: int) -> str:
    return f"+{value}" if value > 0 else str(value)


def _trio(cand: int, cur: int) -> tuple[str, str, str]:
    return str(cand), str(cur), _signed(cand - cur)


# -------------------------------------------------------------------------------- the replay


@dataclass
class _Run:
    ruleset: RuleSet
    cost: PointCost
    states: dict[str, RuleState] = field(default_factory=dict)
    records: dict[str, EarningRecord] = field(default_factory=dict)
    awarded: int = 0
    clawed: int = 0
    badges: int = 0
    per_rule: dict[str, int] = field(default_factory=dict)
    per_customer: dict[str, int] = field(default_factory=dict)
    earners: set[str] = field(default_factory=set)

    def earn(self, event: Any, profile: Profile) -> None:
        state = self.states.get(event.customer_id, RuleState())
        result = evaluate(self.ruleset, event, profile, state, now=event.occurred_at)
        self.states[event.customer_id] = result.state
        self.awarded += result.points
        self.badges += len(result.badges_awarded)
        for line in result.lines:
            self.per_rule[line.rule_id] = self.per_rule.get(line.rule_id, 0) + line.points
        self._customer(event.customer_id, result.points)
        if result.points > 0:
            self.earners.add(event.customer_id)
        if isinstance(event, Purchase | PartnerPurchase):
            self.records[event.event_id] = result.record()

    def refund(self, event: Refund | Reversal) -> bool:
        record = self.records.get(event.original_event_id)
        if record is None or record.customer_id != event.customer_id:
            return False
        state = self.states.get(event.customer_id, RuleState())
        result = clawback(self.ruleset, record, event, state)
        self.records[record.event_id] = result.record
        self.states[event.customer_id] = result.state
        self.clawed += result.points
        for line in result.lines:
            self.per_rule[line.rule_id] = self.per_rule.get(line.rule_id, 0) - line.points
        self._customer(event.customer_id, -result.points)
        return True

    def _customer(self, customer_id: str, delta: int) -> None:
        self.per_customer[customer_id] = self.per_customer.get(customer_id, 0) + delta

    def outcome(self) -> RulesetOutcome:
        net = self.awarded - self.clawed
        return RulesetOutcome(
            version=self.ruleset.version,
            points_awarded=self.awarded,
            points_clawed_back=self.clawed,
            cost_minor=self.cost.of(net),
            customers_earning=len(self.earners),
            per_rule=dict(self.per_rule),
            per_customer=dict(self.per_customer),
            badges_awarded=self.badges,
        )


def backtest(
    candidate: RuleSet,
    current: RuleSet,
    events: Iterable[Any],
    profiles: Mapping[str, Profile],
    *,
    cost: PointCost = PointCost(),
) -> BacktestReport:
    """Run both rule sets over ``events`` (decoded messages, in order) and compare them.

    ``profiles`` seeds customer profiles; ``bank.customers`` messages among the events update
    them as they come. A customer without a profile yet is scored as live earning scores them
    (``Profile.unknown``: no segment, age or join date). Refunds of purchases not in the file
    and message kinds that do not earn (swaps, links) are counted as skipped.
    """
    known = dict(profiles)
    runs = (_Run(candidate, cost), _Run(current, cost))
    read = evaluated = profiles_applied = 0
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for event in events:
        read += 1
        if isinstance(event, CustomerProfile | CustomerOnboarded):
            known[event.customer_id] = Profile.from_event(event)
            profiles_applied += 1
            continue
        if isinstance(event, Refund | Reversal):
            done = [run.refund(event) for run in runs]
            if all(done):
                evaluated += 1
            else:
                skip("refund of a purchase not in the file")
            continue
        if not isinstance(event, Purchase | PartnerPurchase | CheckIn | Share | ChallengeOptIn):
            skip(f"{event.event_type} (does not earn)")
            continue
        # As live earning: a customer whose profile has not come yet is scored as unknown.
        profile = known.get(event.customer_id) or Profile.unknown(event.customer_id)
        for run in runs:
            run.earn(event, profile)
        evaluated += 1

    return BacktestReport(
        candidate=runs[0].outcome(),
        current=runs[1].outcome(),
        events_read=read,
        events_evaluated=evaluated,
        events_skipped=skipped,
        cost=cost,
        profiles_applied=profiles_applied,
    )


# ------------------------------------------------------------------------------------- files


class EventFileError(Exception):
    """A line of an events file is not a valid message."""


def read_events(path: Path) -> Iterator[Any]:
    """Decode a JSON-lines file of messages lazily; blank lines are ignored."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield any_event_adapter.validate_json(raw)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(part) for part in first["loc"])
                raise EventFileError(f"{path}:{number}: {where}: {first['msg']}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m points.rules.backtest`` (imports the CLI on call: the rules know nothing
    of it)."""
    from points.cli.legacy import backtest_main

    return backtest_main(argv)


if __name__ == "__main__":
    sys.exit(main())

"""Per-customer rule state: immutable, and a lossless round trip through a JSON dict.

The stream worker loads a customer's :class:`RuleState` from the database, calls
``evaluate`` for each of the customer's events in order, and stores the returned state in the
same transaction as the postings. Nothing here reads the clock.

Period counters (points earned per day and per month, overall and per capped rule) live in one
flat mapping keyed ``d:<YYYY-MM-DD>:<name>`` or ``m:<YYYY-MM>:<name>``. Only recent periods
are kept (:data:`DAY_COUNTERS_KEPT` days and :data:`MONTH_COUNTERS_KEPT` months back from the
latest day seen) so the state stays small; a late event for a period already dropped is
treated as if that period's caps were used up (in the bank's favour).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "DAY_COUNTERS_KEPT",
    "MONTH_COUNTERS_KEPT",
    "STATE_FORMAT",
    "ChallengeState",
    "RuleState",
    "StreakState",
    "day_key",
    "month_key",
    "month_of",
]

STATE_FORMAT: Final = 1
DAY_COUNTERS_KEPT: Final = 31
MONTH_COUNTERS_KEPT: Final = 3


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def day_key(day: date, name: str) -> str:
    return f"d:{day.isoformat()}:{name}"


def month_key(day: date, name: str) -> str:
    return f"m:{month_of(day)}:{name}"


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(sorted(mapping.items())))


@dataclass(frozen=True, slots=True)
class StreakState:
    """The last period (day ordinal, or week number since year 1) counted, and the run length."""

    last_period: int
    length: int


@dataclass(frozen=True, slots=True)
class ChallengeState:
    """Progress in one challenge for one period (``YYYY-MM`` or ``YYYY-Www``)."""

    period: str
    opted_in: bool = False
    categories: frozenset[str] = frozenset()
    completed: bool = False


@dataclass(frozen=True)
class RuleState:
    """Everything the rules remember about one customer between events."""

    purchase_count: int = 0
    cumulative_spend_minor: int = 0
    last_purchase_on: date | None = None
    last_activity_on: date | None = None
    latest_day: date | None = None
    badges: frozenset[str] = frozenset()
    partners_seen: frozenset[str] = frozenset()
    #: milestone rule id -> points awarded when it was reached (what a clawback takes back)
    milestones: Mapping[str, int] = field(default_factory=dict)
    streaks: Mapping[str, StreakState] = field(default_factory=dict)
    challenges: Mapping[str, ChallengeState] = field(default_factory=dict)
    counters: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Copy and freeze the mappings so no caller can change a state after the fact.
        for name in ("milestones", "streaks", "challenges", "counters"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    # ------------------------------------------------------------------ period counters

    def is_day_kept(self, day: date) -> bool:
        """Whether counters for ``day`` are still held (False: a late event, caps used up)."""
        if self.latest_day is None:
            return True
        return day > self.latest_day - timedelta(days=DAY_COUNTERS_KEPT)

    def is_month_kept(self, day: date) -> bool:
        if self.latest_day is None:
            return True
        return _month_index(day) > _month_index(self.latest_day) - MONTH_COUNTERS_KEPT

    def counter(self, key: str) -> int:
        return self.counters.get(key, 0)

    def with_counts(self, increments: Mapping[str, int], day: date) -> RuleState:
        """Add to counters, move the latest day forward, and drop periods no longer kept."""
        counters = dict(self.counters)
        for key, amount in increments.items():
            if amount:
                counters[key] = counters.get(key, 0) + amount
        latest = day if self.latest_day is None else max(self.latest_day, day)
        oldest_day = (latest - timedelta(days=DAY_COUNTERS_KEPT - 1)).isoformat()
        oldest_month = _month_index(latest) - MONTH_COUNTERS_KEPT + 1
        kept = {}
        for key, value in counters.items():
            scope, period, _ = key.split(":", 2)
            if scope == "d" and period < oldest_day:
                continue
            if scope == "m" and _month_index_of(period) < oldest_month:
                continue
            kept[key] = value
        return replace(self, counters=kept, latest_day=latest)

    # ------------------------------------------------------------------ serialisation

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (sorted, plain types) that :meth:`from_json` turns back exactly."""
        return {
            "format": STATE_FORMAT,
            "purchase_count": self.purchase_count,
            "cumulative_spend_minor": self.cumulative_spend_minor,
            "last_purchase_on": _date_out(self.last_purchase_on),
            "last_activity_on": _date_out(self.last_activity_on),
            "latest_day": _date_out(self.latest_day),
            "badges": sorted(self.badges),
            "partners_seen": sorted(self.partners_seen),
            "milestones": dict(self.milestones),
            "streaks": {
                rule_id: {"last_period": s.last_period, "length": s.length}
                for rule_id, s in self.streaks.items()
            },
            "challenges": {
                rule_id: {
                    "period": c.period,
                    "opted_in": c.opted_in,
                    "categories": sorted(c.categories),
                    "completed": c.completed,
                }
                for rule_id, c in self.challenges.items()
            },
            "counters": dict(self.counters),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        """Rebuild a state from :meth:`to_json` output; raise ValueError on anything else."""
        try:
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"unsupported rule state format {data.get('format')!r}")
            return cls(
                purchase_count=_int(data["purchase_count"]),
                cumulative_spend_minor=_int(data["cumulative_spend_minor"]),
                last_purchase_on=_date_in(data["last_purchase_on"]),
                last_activity_on=_date_in(data["last_activity_on"]),
                latest_day=_date_in(data["latest_day"]),
                badges=frozenset(_strs(data["badges"])),
                partners_seen=frozenset(_strs(data["partners_seen"])),
                milestones={str(k): _int(v) for k, v in data["milestones"].items()},
                streaks={
                    str(k): StreakState(_int(v["last_period"]), _int(v["length"]))
                    for k, v in data["streaks"].items()
                },
                challenges={
                    str(k): ChallengeState(
                        period=str(v["period"]),
                        opted_in=_bool(v["opted_in"]),
                        categories=frozenset(_strs(v["categories"])),
                        completed=_bool(v["completed"]),
                    )
                    for k, v in data["challenges"].items()
                },
                counters={str(k): _int(v) for k, v in data["counters"].items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed rule state: {exc!r}") from exc


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _month_index_of(period: str) -> int:
    year, month = period.split("-")
    return int(year) * 12 + int(month) - 1


def _date_out(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _date_in(value: object) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO date string, got {value!r}")
    return date.fromisoformat(value)


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {value!r}")
    return value


def _strs(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return list(value)

"""The behaviour profile: what a customer's own purchases say about them, by event time.

Kept in the customer's :class:`~points.rules.state.RuleState` (``behaviour``), so it is
written in the same transaction as the points and replayed exactly once with them (the inbox
makes processing exactly once). Pure: nothing here reads the clock; every question is asked
"as of" a day the caller names (the stream asks as of the event's day).

Representation (compact, bounded; docs/rules.md, "Behaviour profile"):

- ``days``: per-day buckets, one flat tuple of ``(day ordinal, purchases, net spend minor)``
  triples in ascending day order, for the :data:`BUCKET_DAYS_KEPT` days up to the newest
  bucket: the 90-day window plus room for an event up to 30 days late (the rule file's
  largest ``lateness_hours``), so a late event gets the answer in-order arrival would give.
  At most 120 triples whatever the customer does.
- ``first_purchase`` / ``last_purchase``: day ordinals of the earliest and the latest purchase
  (``1``, that is 0001-01-01, for a first purchase made before profiles existed).
- ``reactivated``: the day of the latest purchase that ended a gap of at least the rule file's
  ``dormant_days`` (None: none).
- ``mcc_groups`` / ``partners``: purchases per MCC group and per partner since the profile
  began (bounded by the rule file's groups and partners); the top ones are the customer's
  affinities.

Refunds and reversals lower *spend* on their own day (net spend, as a retailer's net sales
book a return on the day it happens; a window's spend never shows below zero); they do not
lower *frequency* (the visit happened) nor move recency.

Lifecycle stage at day D, first match wins (thresholds from the rule file's ``lifecycle``):
``new`` (no purchase yet, or the first less than ``new_days`` ago), ``dormant`` (no purchase
for ``dormant_days``), ``reactivated`` (a purchase ended a dormant gap less than
``reactivated_days`` ago), ``at_risk`` (purchases in the last 30 days below ``at_risk_percent``
of the customer's own 30-day baseline, measured over days 31-90, when that baseline holds at
least ``baseline_min_purchases`` purchases), else ``active``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "BUCKET_DAYS_KEPT",
    "EMPTY_BEHAVIOUR",
    "STAGES",
    "WINDOW_DAYS",
    "Behaviour",
    "LifecycleThresholds",
    "Snapshot",
    "snapshot",
    "stage_of",
]

#: the long rolling window (days); the short one is RECENT_DAYS
WINDOW_DAYS: Final = 90
RECENT_DAYS: Final = 30
#: the longest lateness a rule file may declare (lateness_hours <= 720), in days
_LATENESS_DAYS_MAX: Final = 30
BUCKET_DAYS_KEPT: Final = WINDOW_DAYS + _LATENESS_DAYS_MAX
STAGES: Final = ("new", "active", "at_risk", "dormant", "reactivated")
#: first_purchase of a customer who bought before the profile existed (not new, day unknown)
BEFORE_PROFILES: Final = 1
#: how many top MCC groups and partners a snapshot lists
TOP_N: Final = 3

_NOTHING: Final[Mapping[str, int]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LifecycleThresholds:
    """The rule file's ``lifecycle`` section, in days and percent (see the module docstring)."""

    new_days: int = 30
    dormant_days: int = 60
    reactivated_days: int = 30
    at_risk_percent: int = 50
    baseline_min_purchases: int = 2


DEFAULT_THRESHOLDS: Final = LifecycleThresholds()


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One customer's behaviour profile (immutable; see the module docstring)."""

    days: tuple[int, ...] = ()
    first_purchase: int | None = None
    last_purchase: int | None = None
    reactivated: int | None = None
    mcc_groups: Mapping[str, int] = field(default_factory=lambda: _NOTHING)
    partners: Mapping[str, int] = field(default_factory=lambda: _NOTHING)

    # ------------------------------------------------------------------ updates (hot path)

    @classmethod
    def seeded(cls, last_purchase_on: date | None) -> Behaviour:
        """The profile of a customer whose purchases predate profiles: not new, last purchase
        known from the rule state, no buckets (windows fill from the next purchase on)."""
        if last_purchase_on is None:
            return EMPTY_BEHAVIOUR
        return _built((), BEFORE_PROFILES, last_purchase_on.toordinal(), None, _NOTHING, _NOTHING)

    def with_purchase(
        self,
        day: int,
        amount_minor: int,
        group: str | None,
        partner: str | None,
        dormant_days: int,
    ) -> Behaviour:
        """The profile after a purchase on day ordinal ``day`` (possibly a late one)."""
        days = self.days
        if days and days[-3] == day:  # the usual case: another purchase on the newest day
            days = (*days[:-2], days[-2] + 1, days[-1] + amount_minor)
        elif not days or days[-3] < day:
            days = _pruned((*days, day, 1, amount_minor), day)
        else:
            days = _added_late(days, day, 1, amount_minor)
        first, last, reactivated = self.first_purchase, self.last_purchase, self.reactivated
        if first is None or last is None:
            first = last = day
        elif day > last:
            if day - last >= dormant_days:
                reactivated = day
            last = day
        elif day < last:
            first, reactivated = _late_purchase(days, day, first, reactivated, dormant_days)
        return _built(
            days,
            first,
            last,
            reactivated,
            _counted(self.mcc_groups, group),
            _counted(self.partners, partner),
        )

    def with_refund(self, day: int, amount_minor: int) -> Behaviour:
        """The profile after ``amount_minor`` was refunded (or reversed) on ``day``."""
        if amount_minor <= 0:
            return self
        days = self.days
        if days and days[-3] == day:
            days = (*days[:-1], days[-1] - amount_minor)
        elif not days or days[-3] < day:
            days = _pruned((*days, day, 0, -amount_minor), day)
        else:
            days = _added_late(days, day, 0, -amount_minor)
        return _built(
            days,
            self.first_purchase,
            self.last_purchase,
            self.reactivated,
            self.mcc_groups,
            self.partners,
        )

    # ------------------------------------------------------------------ questions

    def window(self, day: int, length: int, skip: int = 0) -> tuple[int, int]:
        """(purchases, net spend) on the days in (day - length, day - skip], spend >= 0."""
        days = self.days
        low, high = day - length, day - skip
        purchases = spend = 0
        for i in range(len(days) - 3, -1, -3):
            ordinal = days[i]
            if ordinal <= low:
                break
            if ordinal <= high:
                purchases += days[i + 1]
                spend += days[i + 2]
        return purchases, max(0, spend)

    def last_purchase_by(self, day: int) -> int | None:
        """The latest purchase day on or before ``day`` (None: none the profile can see)."""
        last = self.last_purchase
        if last is None or last <= day:
            return last
        days = self.days
        for i in range(len(days) - 3, -1, -3):
            if days[i] <= day and days[i + 1] > 0:
                return days[i]
        return None

    def top_mcc_groups(self) -> list[tuple[str, int]]:
        return _top(self.mcc_groups)

    def top_partners(self) -> list[tuple[str, int]]:
        return _top(self.partners)

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        groups, partners = self.mcc_groups, self.partners
        return {
            "days": list(self.days),
            "first": self.first_purchase,
            "last": self.last_purchase,
            "reactivated": self.reactivated,
            "mcc_groups": groups.copy() if type(groups) is MappingProxyType else dict(groups),
            "partners": partners.copy() if type(partners) is MappingProxyType else dict(partners),
        }

    @classmethod
    def from_json(cls, data: Any) -> Behaviour:
        """Rebuild from :meth:`to_json`; TypeError/KeyError on anything else (RuleState.from_json
        turns them into its ValueError)."""
        if type(data) is not dict:
            raise TypeError(f"expected a behaviour mapping, got {data!r}")
        # Runs once per customer per batch (with RuleState.from_json): checks in bulk, in C.
        days = data["days"]
        if type(days) is not list or len(days) % 3 or not _INT.issuperset(map(type, days)):
            raise TypeError(f"expected day triples of integers, got {days!r}")
        if len(days) > 3:
            ordinals = days[0::3]
            if ordinals != sorted(ordinals) or len(set(ordinals)) != len(ordinals):
                raise TypeError(f"day buckets must be in day order: {days!r}")
        if days and min(days[1::3]) < 0:
            raise TypeError(f"day buckets must hold purchases >= 0: {days!r}")
        first, last, reactivated = data["first"], data["last"], data["reactivated"]
        if type(first) is not int or first < 1:
            first = _ordinal(first)
        if type(last) is not int or last < 1:
            last = _ordinal(last)
        if reactivated is not None:
            reactivated = _ordinal(reactivated)
        return _built(
            tuple(days),
            first,
            last,
            reactivated,
            _counts(data["mcc_groups"]),
            _counts(data["partners"]),
        )


EMPTY_BEHAVIOUR: Final = Behaviour()

# A profile is made per purchase: filled through the slots' own setters rather than the
# frozen dataclass __init__ (six object.__setattr__ calls), as RuleState._trusted does.
_SETTERS: Final = tuple(
    getattr(Behaviour, name).__set__
    for name in ("days", "first_purchase", "last_purchase", "reactivated", "mcc_groups",
                 "partners")
)
_new = object.__new__


def _built(
    days: tuple[int, ...],
    first: int | None,
    last: int | None,
    reactivated: int | None,
    mcc_groups: Mapping[str, int],
    partners: Mapping[str, int],
) -> Behaviour:
    behaviour = _new(Behaviour)
    set_days, set_first, set_last, set_reactivated, set_groups, set_partners = _SETTERS
    set_days(behaviour, days)
    set_first(behaviour, first)
    set_last(behaviour, last)
    set_reactivated(behaviour, reactivated)
    set_groups(behaviour, mcc_groups)
    set_partners(behaviour, partners)
    return behaviour


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the profile says as of one day: what the CLI, the export, the dashboard
    and the audience conditions read."""

    as_of: date
    stage: str
    recency_days: int | None
    purchases_30d: int
    spend_30d_minor: int
    purchases_90d: int
    spend_90d_minor: int
    first_purchase_on: date | None
    last_purchase_on: date | None
    reactivated_on: date | None
    top_mcc_groups: tuple[tuple[str, int], ...]
    partner_affinity: tuple[tuple[str, int], ...]

    @property
    def top_mcc_group(self) -> str | None:
        return self.top_mcc_groups[0][0] if self.top_mcc_groups else None

    @property
    def top_partner(self) -> str | None:
        return self.partner_affinity[0][0] if self.partner_affinity else None

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "lifecycle": self.stage,
            "recency_days": self.recency_days,
            "purchases_30d": self.purchases_30d,
            "spend_30d_minor": self.spend_30d_minor,
            "purchases_90d": self.purchases_90d,
            "spend_90d_minor": self.spend_90d_minor,
            "first_purchase_on": _iso(self.first_purchase_on),
            "last_purchase_on": _iso(self.last_purchase_on),
            "reactivated_on": _iso(self.reactivated_on),
            "top_mcc_groups": [{"group": g, "purchases": n} for g, n in self.top_mcc_groups],
            "partner_affinity": [
                {"partner": p, "purchases": n} for p, n in self.partner_affinity
            ],
        }


def stage_of(behaviour: Behaviour, day: int, thresholds: LifecycleThresholds) -> str:
    """The lifecycle stage on day ordinal ``day`` (see the module docstring for the order)."""
    first = behaviour.first_purchase
    if first is None or first > day:
        return "new"
    last = behaviour.last_purchase_by(day)
    # None: the last purchase before a late day is older than the buckets kept, so at least
    # BUCKET_DAYS_KEPT - lateness >= WINDOW_DAYS >= dormant_days ago.
    if last is None or day - last >= thresholds.dormant_days:
        return "dormant"
    if day - first < thresholds.new_days:
        return "new"
    reactivated = behaviour.reactivated
    if (
        reactivated is not None
        and reactivated <= day
        and day - reactivated < thresholds.reactivated_days
    ):
        return "reactivated"
    recent, _ = behaviour.window(day, RECENT_DAYS)
    baseline, _ = behaviour.window(day, WINDOW_DAYS, RECENT_DAYS)
    # Baseline per 30 days is baseline / 2 (it spans 60 days): recent < pct% of that.
    if (
        baseline >= thresholds.baseline_min_purchases
        and recent * 200 < thresholds.at_risk_percent * baseline
    ):
        return "at_risk"
    return "active"


def snapshot(behaviour: Behaviour, as_of: date, thresholds: LifecycleThresholds) -> Snapshot:
    """What ``behaviour`` says on ``as_of``."""
    day = as_of.toordinal()
    purchases_30d, spend_30d = behaviour.window(day, RECENT_DAYS)
    purchases_90d, spend_90d = behaviour.window(day, WINDOW_DAYS)
    last = behaviour.last_purchase_by(day)
    first = behaviour.first_purchase
    return Snapshot(
        as_of,
        stage_of(behaviour, day, thresholds),
        None if last is None else day - last,
        purchases_30d,
        spend_30d,
        purchases_90d,
        spend_90d,
        None if first is None or first == BEFORE_PROFILES else date.fromordinal(first),
        None if last is None else date.fromordinal(last),
        None if behaviour.reactivated is None else date.fromordinal(behaviour.reactivated),
        tuple(behaviour.top_mcc_groups()),
        tuple(behaviour.top_partners()),
    )


# ---------------------------------------------------------------------------------- helpers

_INT: Final = frozenset({int})
_STR: Final = frozenset({str})


def _pruned(days: tuple[int, ...], newest: int) -> tuple[int, ...]:
    """``days`` without the buckets older than BUCKET_DAYS_KEPT before ``newest``."""
    oldest_kept = newest - BUCKET_DAYS_KEPT
    if days[0] > oldest_kept:
        return days
    start = 0
    while days[start] <= oldest_kept:
        start += 3
    return days[start:]


def _added_late(days: tuple[int, ...], day: int, purchases: int, spend: int) -> tuple[int, ...]:
    """``days`` with a late event added to its day's bucket (none too old to be kept)."""
    if day <= days[-3] - BUCKET_DAYS_KEPT:
        return days  # older than every window a later question can ask about
    out = list(days)
    for i in range(0, len(out), 3):
        if out[i] == day:
            out[i + 1] += purchases
            out[i + 2] += spend
            return tuple(out)
        if out[i] > day:
            out[i:i] = [day, purchases, spend]
            return tuple(out)
    raise AssertionError("a late day is before the newest bucket")  # pragma: no cover


def _late_purchase(
    days: tuple[int, ...], day: int, first: int, reactivated: int | None, dormant_days: int
) -> tuple[int, int | None]:
    """(first purchase, latest reactivation) after a purchase earlier than the latest one.

    A late purchase inside the dormant gap a reactivation ended splits that gap: the
    reactivation moves to the late purchase if the gap before it is still dormant, else
    there was none. Anywhere else it cannot change the latest reactivation (a gap after the
    reactivation is shorter than dormant_days, or it would be the latest), except a new first
    purchase, which may make the old first one a reactivation."""
    if day < first:
        # Now the first purchase: the old first ends a gap after it, the latest reactivation
        # (always after the old first) stays the latest.
        if reactivated is None and first - day >= dormant_days:
            reactivated = first
        return day, reactivated
    if reactivated is None or day >= reactivated or reactivated - day >= dormant_days:
        return first, reactivated
    before = None
    for i in range(len(days) - 3, -1, -3):
        if days[i] < day and days[i + 1] > 0:
            before = days[i]
            break
    # Not among the buckets: older than they reach, so at least a window's length before.
    if before is None or day - before >= dormant_days:
        return first, day
    # The gap is closed: the latest reactivation is now the one before it, if the buckets
    # show it (a purchase ending a dormant gap between two kept purchase days).
    return first, _latest_reactivation_before(days, day, dormant_days)


def _latest_reactivation_before(days: tuple[int, ...], day: int, dormant_days: int) -> int | None:
    """The latest kept purchase day before ``day`` that ended a gap of ``dormant_days`` or more
    after the kept purchase day before it (None: none the buckets can show)."""
    latest = previous = None
    for i in range(0, len(days), 3):
        bucket = days[i]
        if bucket >= day:
            break
        if days[i + 1] > 0:
            if previous is not None and bucket - previous >= dormant_days:
                latest = bucket
            previous = bucket
    return latest


def _counted(counts: Mapping[str, int], name: str | None) -> Mapping[str, int]:
    if name is None:
        return counts
    updated = counts.copy() if type(counts) is MappingProxyType else dict(counts)
    updated[name] = updated.get(name, 0) + 1
    return MappingProxyType(updated)


def _top(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """The most purchases first, ties by name."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_N]


def _ordinal(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise TypeError(f"expected a day ordinal, got {value!r}")
    return value


def _counts(raw: Any) -> Mapping[str, int]:
    if type(raw) is not dict:
        raise TypeError(f"expected a mapping of counts, got {raw!r}")
    if not raw:
        return _NOTHING
    if len(raw) == 1:  # most customers: one group, one partner
        ((key, value),) = raw.items()
        if type(key) is str and type(value) is int and value >= 0:
            return MappingProxyType({key: value})
    values = raw.values()
    if _STR.issuperset(map(type, raw)) and _INT.issuperset(map(type, values)) and min(values) >= 0:
        return MappingProxyType(raw.copy())
    for key, value in raw.items():
        if type(key) is not str or type(value) is not int or value < 0:
            raise TypeError(f"expected a mapping of counts, got {raw!r}")
    return MappingProxyType(dict(raw))


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()

"""Period counters: points earned per day and per month, overall and per capped rule.

They live in one flat mapping of a :class:`~points.rules.state.RuleState`, keyed
``d:<YYYY-MM-DD>:<name>`` or ``m:<YYYY-MM>:<name>``. Only recent periods are kept
(:data:`DAY_COUNTERS_KEPT` days and :data:`MONTH_COUNTERS_KEPT` months back from the latest day
seen) so the state stays small; a late event for a period already dropped is treated as if that
period's caps were used up (in the bank's favour). This module names the keys and keeps the
mapping pruned (:func:`advance_counters`, :func:`pruned`), once per event on the hot path: keys
and horizons recur across customers, so what each implies is worked out once and remembered.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any, Final

from points.rules.memo import MEMO_LIMIT, Memo

__all__ = [
    "DAY_COUNTERS_KEPT",
    "EMPTY",
    "MONTH_COUNTERS_KEPT",
    "advance_counters",
    "day_key",
    "month_index",
    "month_key",
    "month_of",
    "pruned",
]

DAY_COUNTERS_KEPT: Final = 31
MONTH_COUNTERS_KEPT: Final = 3
#: One shared empty mapping: read-only, so every state (and counters) without entries use it.
EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def day_key(day: date, name: str) -> str:
    return f"d:{day.isoformat()}:{name}"


def month_key(day: date, name: str) -> str:
    return f"m:{month_of(day)}:{name}"


def _counter_key(key: str) -> tuple[str, str, int]:
    """A counter key's scope ("d" or "m"), period text, and month index (0 for days)."""
    scope, period, _ = key.split(":", 2)
    return (scope, period, _month_index_of(period) if scope == "m" else 0)


#: counter key -> the ordinal of the first latest day at which the key is dropped. Only for
#: keys whose period is well formed (an ISO day or a year-month): for those, "stale" in
#: advance_counters is exactly ``latest.toordinal() >= expiry``, so one C-level ``min`` over
#: the keys tells whether anything is to be dropped (almost always nothing).
_EXPIRIES: dict[str, int] = {}
_NEVER: Final = date.max.toordinal() + 1


def _expiry(key: str) -> int | None:
    """The ordinal from which ``key`` is stale, or None to leave the key to the general rule.

    A day key ``d:<P>:`` is stale when P < (latest - (DAY_COUNTERS_KEPT - 1) days) as ISO
    text; for a real ISO day that is latest >= P + DAY_COUNTERS_KEPT days. A month key
    ``m:<P>:`` is stale when its month index M < month_index(latest) - MONTH_COUNTERS_KEPT + 1,
    that is from the first day of month index M + MONTH_COUNTERS_KEPT. Other scopes never are.
    """
    parts = key.split(":", 2)
    if len(parts) != 3:
        return None  # the general rule raises for it, as it always did
    scope, period, _ = parts
    if scope == "d":
        try:
            day = date.fromisoformat(period)
        except ValueError:
            return None
        if day.isoformat() != period:
            return None  # compared as text by the general rule, not as a day
        return day.toordinal() + DAY_COUNTERS_KEPT
    if scope == "m":
        try:
            month = _month_index_of(period)
        except ValueError:
            return None
        first = month + MONTH_COUNTERS_KEPT  # the month index from which the key is stale
        if first < 12:  # before year 1: every day is later
            return 0
        if first // 12 > date.max.year:
            return _NEVER
        return date(first // 12, first % 12 + 1, 1).toordinal()
    return _NEVER


def _horizon(latest: date) -> tuple[str, int]:
    """For a latest day: the oldest day kept (as ISO text) and the oldest month index kept."""
    return (
        (latest - timedelta(days=DAY_COUNTERS_KEPT - 1)).isoformat(),
        month_index(latest) - MONTH_COUNTERS_KEPT + 1,
    )


# Keys and latest days repeat across customers and events ("d:2026-11-26:total"): each is
# parsed or worked out once per process (bounded: see points.rules.memo).
_COUNTER_KEYS: Memo[str, tuple[str, str, int]] = Memo(_counter_key)
_HORIZONS: Memo[date, tuple[str, int]] = Memo(_horizon)


def advance_counters(
    counters: Mapping[str, int],
    latest_day: date | None,
    increments: Mapping[str, int],
    day: date,
) -> tuple[Mapping[str, int], date]:
    """What :meth:`RuleState.with_counts` does to the counters and the latest day.

    ``counters`` must be key-sorted (every state's are); the result is read-only and sorted.
    """
    updated = counters.copy() if type(counters) is MappingProxyType else dict(counters)
    added = False
    for key, amount in increments.items():
        if amount:
            if key in updated:
                updated[key] += amount
            else:
                updated[key] = amount
                added = True
    return pruned(updated, added, day if latest_day is None else max(latest_day, day))


def pruned(updated: dict[str, int], added: bool, latest: date) -> tuple[Mapping[str, int], date]:
    """The end of :func:`advance_counters`: drop from ``updated`` (a key-sorted dict nobody
    else holds, to which keys were ``added`` if so) the periods ``latest`` no longer keeps,
    and freeze it (sorted again only if a key was added: deleting keeps the order)."""
    oldest_day, oldest_month = _HORIZONS[latest]
    try:
        # Almost every event: every key known and none due (see _EXPIRIES).
        keep_all = not updated or min(map(_EXPIRIES.__getitem__, updated)) > latest.toordinal()
    except KeyError:
        keep_all = False
    if not keep_all:
        stale = []
        for key in updated:
            scope, period, month = _COUNTER_KEYS[key]
            if (scope == "d" and period < oldest_day) or (scope == "m" and month < oldest_month):
                stale.append(key)
            elif key not in _EXPIRIES:
                expiry = _expiry(key)
                if expiry is not None:
                    if len(_EXPIRIES) >= MEMO_LIMIT:
                        _EXPIRIES.clear()
                    _EXPIRIES[key] = expiry
        for key in stale:
            del updated[key]
    if not updated:
        return EMPTY, latest
    return MappingProxyType(dict(sorted(updated.items())) if added else updated), latest


def month_index(day: date) -> int:
    """Months since year 0: consecutive months have consecutive indexes."""
    return day.year * 12 + day.month - 1


def _month_index_of(period: str) -> int:
    year, month = period.split("-")
    return int(year) * 12 + int(month) - 1

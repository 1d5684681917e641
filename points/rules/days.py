"""The calendar as the rules see it: the day an event counts on, and what that day implies.

An event counts at its ``occurred_at``, or at ``now`` if it claims a later time (a producer
cannot timestamp itself into a future campaign), on that moment's day in the rule set's zone
(:func:`moment`). What a day implies for the rules -- its ISO text, its counter keys, its week
and month numbers, its challenge periods -- is worked out once per day (:class:`Day`) and kept
in the :class:`Calendar` of the compiled rule set (:attr:`points.rules.plan.RulePlan.calendar`),
which lives exactly as long as that plan: this is the per-event path of the earning worker.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final
from zoneinfo import ZoneInfo

from pydantic_core import TzInfo

from points.rules.counters import DAY_COUNTERS_KEPT, MONTH_COUNTERS_KEPT, month_index, month_of
from points.rules.memo import Memo

__all__ = ["FUTURE_NOTE", "Calendar", "Day", "kept_after", "later", "moment"]

#: the counter name of the points earned in all, per day and per month
_TOTAL: Final = "total"
FUTURE_NOTE: Final = "occurred_at is later than now; evaluated as of now"


class Day:
    """What the rules need to know about one calendar day (in the rule set's zone)."""

    __slots__ = (
        "day",
        "day_prefix",
        "day_total",
        "iso_week",
        "month",
        "month_index",
        "month_prefix",
        "month_total",
        "ordinal",
        "rule_keys",
        "week",
        "year",
    )

    def __init__(self, day: date) -> None:
        iso = day.isoformat()
        self.day = day
        self.year = day.year
        self.ordinal = day.toordinal()
        # date(1, 1, 1) is a Monday, so (ordinal - 1) // 7 numbers ISO weeks (Monday to Sunday).
        self.week = (self.ordinal - 1) // 7
        self.month_index = month_index(day)
        # Counter keys are "d:<YYYY-MM-DD>:<name>" and "m:<YYYY-MM>:<name>" (see counters.day_key).
        self.day_prefix = f"d:{iso}:"
        self.month_prefix = f"m:{iso[:7]}:"
        self.day_total = self.day_prefix + _TOTAL
        self.month_total = self.month_prefix + _TOTAL
        # Challenge periods: "YYYY-MM" and "YYYY-Www".
        self.month = month_of(day)
        year, week, _ = day.isocalendar()
        self.iso_week = f"{year:04d}-W{week:02d}"
        #: a capped rule's counter name -> its (day key, month key) for this day: one string
        #: object per key shared by every state, instead of two new strings per event
        self.rule_keys: dict[str, tuple[str, str]] = {}

    def keys_of(self, counter: str) -> tuple[str, str]:
        keys = self.rule_keys.get(counter)
        if keys is None:
            keys = self.rule_keys[counter] = (
                self.day_prefix + counter,
                self.month_prefix + counter,
            )
        return keys


def kept_after(latest_day: date) -> tuple[date, int]:
    """For a state whose latest day is ``latest_day``: the day a counted day must be after,
    and the month index a counted month must be after (RuleState.is_day_kept, is_month_kept).
    """
    return (
        latest_day - timedelta(days=DAY_COUNTERS_KEPT),
        month_index(latest_day) - MONTH_COUNTERS_KEPT,
    )


class Calendar:
    """The days one compiled rule set has met (``days[d]``: the :class:`Day` of ``d``) and
    the counter horizons of its states' latest days (``kept_after[d]``: :func:`kept_after`).

    One per :class:`~points.rules.plan.RulePlan`, dropped with it: a day's counter keys name
    that rule set's capped rules. Both are :class:`~points.rules.memo.Memo` s (bounded).
    """

    __slots__ = ("days", "kept_after")

    def __init__(self) -> None:
        self.days: Memo[date, Day] = Memo(Day)
        self.kept_after: Memo[date, tuple[date, int]] = Memo(kept_after)


def later(current: date | None, day: date) -> date:
    """The later of a remembered day (None: none yet) and ``day``."""
    return day if current is None else max(current, day)


#: time zone types whose utcoffset() is never None (so astimezone(UTC) is exact)
_OFFSET_ZONES = frozenset({timezone, ZoneInfo, TzInfo})


def moment(
    zone: ZoneInfo, occurred_at: datetime, now: datetime
) -> tuple[datetime, datetime, date, list[str]]:
    """The moment an event counts at (never later than ``now``), that moment in UTC, its day
    in ``zone``, and notes.

    Comparing datetimes of two different zones, and converting from the event model's zone,
    are slow; with both instants in UTC (exactly equivalent for zones that always give an
    offset) the comparison is field by field, and the day comes from the UTC instant.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    occurred_zone = occurred_at.tzinfo
    now_zone = now.tzinfo
    if occurred_zone is now_zone or not (
        type(occurred_zone) in _OFFSET_ZONES and type(now_zone) in _OFFSET_ZONES
    ):
        future = occurred_at > now  # the same zone object compares wall-clock fields
        occurred_utc = None
    else:
        occurred_utc = occurred_at.astimezone(UTC)
        future = occurred_utc > now.astimezone(UTC)
    if future:
        at, notes = now, [FUTURE_NOTE]
        at_utc = now.astimezone(UTC)
    else:
        at, notes = occurred_at, []
        at_utc = occurred_at.astimezone(UTC) if occurred_utc is None else occurred_utc
    # at.astimezone(zone) returns ``at`` itself when already in ``zone``; otherwise it is the
    # UTC instant's conversion.
    day = at.date() if at.tzinfo is zone else at_utc.astimezone(zone).date()
    return at, at_utc, day, notes

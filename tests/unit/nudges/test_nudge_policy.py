"""Deciding nudges: ids by cause, consent, status, quiet hours across midnight, caps."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from points.nudges.declarations import (
    MilestoneNearNudge,
    NudgeCaps,
    NudgeSection,
    QuietHours,
)
from points.nudges.policy import NudgeCause, decide, nudge_id_of

ZONE = ZoneInfo("Asia/Shanghai")
NUDGE = MilestoneNearNudge(
    id="near", kind="milestone_near", target="m", remaining=2, template="t"
)
SECTION = NudgeSection(
    caps=NudgeCaps(per_day=1, per_week=2),
    quiet_hours=QuietHours(starts=time(22), ends=time(8)),
    messages=[NUDGE],
)


def cause(customer: str, what: str, hour_utc: int, day: int = 27, consent: bool = True,
          status: str = "active") -> NudgeCause:
    at = datetime(2026, 11, day, hour_utc, tzinfo=UTC)
    return NudgeCause(NUDGE, customer, what, at, consent, status, {})


def test_the_id_is_a_function_of_nudge_customer_and_cause() -> None:
    """Same inputs, same id; any part different, another id."""
    assert nudge_id_of("n", "c", "x") == nudge_id_of("n", "c", "x")
    assert len({nudge_id_of("n", "c", "x"), nudge_id_of("n", "c", "y"),
                nudge_id_of("n", "d", "x"), nudge_id_of("m", "c", "x")}) == 4


def test_quiet_hours_cross_midnight() -> None:
    """22:00-08:00: 23:00 and 07:59 are quiet, 08:00 and 21:59 are not."""
    quiet = QuietHours(starts=time(22), ends=time(8))
    assert quiet.contains(time(23)) and quiet.contains(time(7, 59))
    assert not quiet.contains(time(8)) and not quiet.contains(time(21, 59))


def test_reasons_in_order_and_caps_count_only_what_was_sent() -> None:
    """No consent, a frozen account and a quiet hour are suppressed without using the cap;
    then one is sent, the next that day hits the daily cap, the next day's hits the weekly
    cap because one was already sent earlier that week."""
    decisions = decide(SECTION, ZONE, "v1", [
        cause("a", "1", 9, consent=False),
        cause("a", "2", 9, status="frozen"),
        cause("a", "3", 15),  # 23:00 local
        cause("a", "4", 9),
        cause("a", "5", 10),
        cause("a", "6", 9, day=28),
        cause("a", "4", 9),  # the same cause again: decided once
    ], {("a", date(2026, 11, 23)): 1})
    assert [(d.cause.cause, d.outcome, d.reason_code) for d in decisions] == [
        ("1", "suppressed", "no_consent"),
        ("2", "suppressed", "customer_status"),
        ("3", "suppressed", "quiet_hours"),
        ("4", "sent", None),
        ("5", "suppressed", "cap_per_day"),
        ("6", "suppressed", "cap_per_week"),
    ]
    sent = decisions[3].message
    assert sent["local_day"] == "2026-11-27" and sent["customer_id"] == "a"

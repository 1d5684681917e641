"""Time-based nudges, found by the leader's timer with no incoming traffic.

Each round (:meth:`NudgeTimer.run_once`) looks at the clock in the rule file's zone and, in one
transaction per kind:

- ``streak_at_risk``: from ``by_local_hour`` on, every customer whose daily streak is alive
  (its last counted day is before today and within ``1 + grace_periods`` days, so today's
  action would still extend it) and has not counted today. Cause ``streak:<rule>:<day>``: at
  most one per customer, streak and day. Only rule states written in the last
  ``2 + grace`` days can qualify (a state is written when its events are, and an event is not
  written before it happens), so the day's first round reads those, not every customer; a
  later round (every ``rescan_every``, default 10 minutes) reads only the states written since
  the round before (less a margin), which is where a late event (yesterday's check-in
  arriving now, a backlog consumed after a restart) can have made a new one;
- ``lifecycle_at_risk``: every customer whose lifecycle stage today is ``at_risk``
  (points/rules/behaviour.py). A customer's stage falls into ``at_risk`` only because days
  pass (a purchase adds to the recent window; only the day it is judged on moving forward can
  empty it), so judging as of today finds every one, and the earning batch does not judge it
  per event (that cost ~13% of the worker's CPU per event, measured). The day's first round
  reads every customer who bought within ``dormant_days``, later rounds those written since
  (as for streaks, every ``rescan_every``). Cause ``lifecycle:at_risk:<newest event day>``:
  one win-back per quiet spell;
- ``points_expiring``: every customer with at least ``min_points`` in lots expiring within
  ``within_days``. Cause ``expiring:<first expiry day>``: one nudge per customer for the
  earliest expiry day in the window.

Every finding goes through :func:`points.nudges.store.record_nudges`: its id (hash of nudge,
customer, cause) is decided at most once, so a second round, a restart or a second worker's
timer finds it decided and sends nothing. ``points_expiring`` runs once a day per process
(a restart runs it once more, harmlessly): lots enter the window by the day.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from points.earning.tables import customer_profiles, customer_rule_state
from points.ledger.model import BANK
from points.ledger.tables import accounts, lots
from points.nudges.declarations import PointsExpiringNudge, StreakAtRiskNudge
from points.nudges.policy import NudgeCause
from points.nudges.store import NudgesRecorded, record_nudges
from points.nudges.triggers import LIFECYCLE_AT_RISK, NudgeRules
from points.rules.lifecycle import stage_at
from points.rules.ruleset import RuleSet, StreakRule
from points.rules.state import RuleState

__all__ = ["NudgeTimer", "TimerRound"]

log = logging.getLogger(__name__)

_PAGE = 2000
#: how far back a later round of the day looks again: covers a batch whose transaction was
#: open during the previous round (its rows carry its start time) and clock skew
WRITE_MARGIN = timedelta(minutes=5)
LIFECYCLE_ROUND = "lifecycle"
#: how often a later round of the day looks again for streaks and stages newly at risk
RESCAN_EVERY = timedelta(minutes=10)


@dataclass(slots=True)
class TimerRound:
    sent: int = 0
    suppressed: int = 0
    skipped: int = 0  # scans skipped: the day's expiry scan done, or a rescan not due yet

    def add(self, recorded: NudgesRecorded) -> None:
        self.sent += recorded.sent
        self.suppressed += recorded.suppressed


class NudgeTimer:
    """The time-based nudges of one rule set; ``run_once`` is one timer tick's work."""

    def __init__(
        self,
        engine: Engine,
        ruleset: RuleSet,
        topic: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rescan_every: timedelta = RESCAN_EVERY,
    ) -> None:
        self._engine = engine
        self._ruleset = ruleset
        self._rules = NudgeRules(ruleset)
        self._topic = topic
        self._clock = clock
        self._rescan_every = rescan_every
        self._swept: set[tuple[str, date]] = set()
        # (streak nudge id or LIFECYCLE_ROUND, day) -> when its last round of that day ran
        self._rounds: dict[tuple[str, date], datetime] = {}

    @property
    def active(self) -> bool:
        return self._rules.on_timer

    def run_once(self) -> TimerRound:
        now = self._clock()
        local = now.astimezone(self._ruleset.zone)
        today = local.date()
        done = TimerRound()
        for nudge in self._rules.streaks:
            if local.hour < nudge.by_local_hour:
                continue
            if self._too_soon(nudge.id, today, now):
                done.skipped += 1
                continue
            changed_since = self._changed_since(nudge.id, today)
            with self._engine.begin() as conn:
                causes = list(self._streaks_at_risk(conn, nudge, today, now, changed_since))
                done.add(self._record(conn, causes, now))
            self._round_done(nudge.id, today, now)
        for expiring in self._rules.expiring:
            if (expiring.id, today) in self._swept:
                done.skipped += 1
                continue
            with self._engine.begin() as conn:
                causes = list(self._points_expiring(conn, expiring, now))
                done.add(self._record(conn, causes, now))
            self._swept.add((expiring.id, today))
        if self._rules.lifecycle and self._too_soon(LIFECYCLE_ROUND, today, now):
            done.skipped += 1
        elif self._rules.lifecycle:
            changed_since = self._changed_since(LIFECYCLE_ROUND, today)
            with self._engine.begin() as conn:
                causes = list(self._gone_at_risk(conn, today, now, changed_since))
                done.add(self._record(conn, causes, now))
            self._round_done(LIFECYCLE_ROUND, today, now)
        if done.sent or done.suppressed:
            log.info("nudge timer: %d sent, %d suppressed", done.sent, done.suppressed)
        return done

    def _too_soon(self, key: str, today: date, now: datetime) -> bool:
        """Whether a later round of ``key`` today would come before ``rescan_every`` since the
        last: under load nearly every active customer is written within any few minutes, so
        each later round re-reads most of them (measured: every 30 s, +20% of the worker's
        CPU per event at 3,000 events/s)."""
        last = self._rounds.get((key, today))
        return last is not None and now - last < self._rescan_every

    def _changed_since(self, key: str, today: date) -> datetime | None:
        """None for the day's first round of ``key`` (read every state that can qualify);
        after it, the previous round's time less a margin for transactions open then: only
        states written since can have changed their answer today."""
        last = self._rounds.get((key, today))
        return None if last is None else last - WRITE_MARGIN

    def _round_done(self, key: str, today: date, now: datetime) -> None:
        kept = {k: at for k, at in self._rounds.items() if k[1] == today}
        self._rounds = kept | {(key, today): now}

    def _record(self, conn: Connection, causes: list[NudgeCause], now: datetime) -> NudgesRecorded:
        ruleset = self._ruleset
        return record_nudges(
            conn, ruleset.nudges, ruleset.zone, ruleset.version, causes, topic=self._topic,
            now=now,
        )

    def _streaks_at_risk(
        self, conn: Connection, nudge: StreakAtRiskNudge, today: date, now: datetime,
        changed_since: datetime | None,
    ) -> Iterator[NudgeCause]:
        rule = self._ruleset.rule(nudge.streak)
        if not isinstance(rule, StreakRule) or not rule.enabled:
            return
        reach = 1 + rule.grace_periods
        ordinal = today.toordinal()
        since = now - timedelta(days=reach + 1)
        if changed_since is not None:
            since = max(since, changed_since)
        found: dict[str, StreakStatus] = {}
        for customer_id, raw in _recent_states(conn, since):
            streak = RuleState.from_json(raw).streaks.get(rule.id)
            if streak is None or streak.length <= 0:
                continue
            if 0 < ordinal - streak.last_period <= reach:
                found[customer_id] = StreakStatus(streak.length, streak.last_period)
        profiles = _profiles(conn, found)
        for customer_id, status in sorted(found.items()):
            consent, account_status = profiles.get(customer_id, (False, "unknown"))
            yield NudgeCause(
                nudge, customer_id, f"streak:{rule.id}:{today.isoformat()}", now, consent,
                account_status,
                {
                    "streak": rule.id,
                    "length": status.length,
                    "last_day": date.fromordinal(status.last_period).isoformat(),
                    "by_local_hour": nudge.by_local_hour,
                },
            )

    def _gone_at_risk(
        self, conn: Connection, today: date, now: datetime, changed_since: datetime | None
    ) -> Iterator[NudgeCause]:
        """Customers whose lifecycle stage today is ``at_risk``. Only a customer who bought
        within ``dormant_days`` can be (else dormant), so the day's first round reads the
        states written since then; later rounds the states written since the round before."""
        thresholds = self._rules.thresholds
        since = now - timedelta(days=thresholds.dormant_days + 1)
        if changed_since is not None:
            since = max(since, changed_since)
        found: dict[str, RuleState] = {}
        for customer_id, raw in _recent_states(conn, since):
            state = RuleState.from_json(raw)
            if stage_at(state, today, thresholds) == LIFECYCLE_AT_RISK:
                found[customer_id] = state
        profiles = _profiles(conn, found)
        for customer_id, state in sorted(found.items()):
            consent, account_status = profiles.get(customer_id, (False, "unknown"))
            yield from self._rules.lifecycle_causes(
                customer_id, state, now, consent, account_status
            )

    def _points_expiring(
        self, conn: Connection, nudge: PointsExpiringNudge, now: datetime
    ) -> Iterator[NudgeCause]:
        until = now + timedelta(days=nudge.within_days)
        sqlite = conn.dialect.name == "sqlite"
        rows = conn.execute(
            select(accounts.c.owner, func.sum(lots.c.remaining), func.min(lots.c.expires_at))
            .select_from(lots.join(accounts, accounts.c.id == lots.c.account_id))
            .where(
                accounts.c.program == BANK,
                accounts.c.kind == "wallet",
                lots.c.remaining > 0,
                lots.c.expires_at > (now.astimezone(UTC).replace(tzinfo=None) if sqlite else now),
                lots.c.expires_at
                <= (until.astimezone(UTC).replace(tzinfo=None) if sqlite else until),
            )
            .group_by(accounts.c.owner)
            .having(func.sum(lots.c.remaining) >= nudge.min_points)
        ).all()
        expiring = {str(owner): (int(points), _aware(first)) for owner, points, first in rows}
        profiles = _profiles(conn, expiring)
        zone = self._ruleset.zone
        for customer_id, (points, first) in sorted(expiring.items()):
            day = first.astimezone(zone).date().isoformat()
            consent, account_status = profiles.get(customer_id, (False, "unknown"))
            yield NudgeCause(
                nudge, customer_id, f"expiring:{day}", now, consent, account_status,
                {"points": points, "expires_on": day, "within_days": nudge.within_days},
            )


@dataclass(frozen=True, slots=True)
class StreakStatus:
    length: int
    last_period: int


def _recent_states(conn: Connection, since: datetime) -> Iterator[tuple[str, Any]]:
    """(customer, state JSON) of the rule states written since ``since``, a page at a time."""
    sqlite = conn.dialect.name == "sqlite"
    bound = since.astimezone(UTC).replace(tzinfo=None) if sqlite else since
    after = ""
    while True:
        page = conn.execute(
            select(customer_rule_state.c.customer_id, customer_rule_state.c.state)
            .where(
                customer_rule_state.c.updated_at >= bound,
                customer_rule_state.c.customer_id > after,
            )
            .order_by(customer_rule_state.c.customer_id)
            .limit(_PAGE)
        ).all()
        if not page:
            return
        for customer_id, state in page:
            yield str(customer_id), state
        after = str(page[-1][0])


def _profiles(conn: Connection, customers: Any) -> dict[str, tuple[bool, str]]:
    """(marketing consent, status) per customer that has a profile."""
    wanted = sorted(customers)
    out: dict[str, tuple[bool, str]] = {}
    for start in range(0, len(wanted), _PAGE):
        rows = conn.execute(
            select(customer_profiles.c.customer_id, customer_profiles.c.profile).where(
                customer_profiles.c.customer_id.in_(wanted[start : start + _PAGE])
            )
        )
        for customer_id, profile in rows:
            out[str(customer_id)] = (
                profile.get("marketing_consent") is True,
                str(profile.get("status") or "active"),
            )
    return out


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite: UTC wall time as text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

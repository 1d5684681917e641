"""The nudge timer: time-based nudges (streak at risk, points expiring, lifecycle ``at_risk``)
on the group leader.

Every ``POINTS_WORKER__NUDGE_TIMER_INTERVAL_S`` seconds (default 30) the leader runs one round
of :class:`points.nudges.timers.NudgeTimer` in a worker thread (a streak or stage scan runs
in full once a day, then again for what changed every ``POINTS_WORKER__NUDGE_RESCAN_INTERVAL_S``,
default 600). It needs no incoming traffic;
its findings are decided at most once each (the nudge id), so a second worker, a restart or a
leader change sends nothing twice. A failed round (say, the database is restarting) is logged
and the next tick tries again: nothing was committed, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import Engine

from points.nudges.timers import NudgeTimer
from points.rules import load_ruleset
from points.settings import Settings
from streams.fastpath import BatchingApp
from streams.runtime import without_cycle_collector

__all__ = ["register_nudge_timer"]

log = logging.getLogger(__name__)


def register_nudge_timer(app: BatchingApp, settings: Settings, engine: Engine) -> NudgeTimer | None:
    """Register the timer if the rule file declares a time-based nudge (else None)."""
    timer = NudgeTimer(
        engine,
        load_ruleset(settings.rules.path),
        settings.kafka.topics.customer_nudges,
        rescan_every=timedelta(seconds=settings.worker.nudge_rescan_interval_s),
    )
    if not timer.active:
        return None

    # faust's App.timer carries no type hints.
    @app.timer(  # type: ignore[untyped-decorator]
        interval=settings.worker.nudge_timer_interval_s, on_leader=True, name="nudge-timer"
    )
    async def nudge_timer() -> None:
        if app.should_stop:
            return
        try:
            await asyncio.to_thread(without_cycle_collector, timer.run_once)
        except Exception:  # the next tick retries; a timer must not die
            log.exception("nudge timer round failed")

    return timer

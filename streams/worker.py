"""Entry point: ``python -m streams.worker`` (or ``points-worker``) runs one faust worker.

It creates the topics it needs, migrates nothing (run ``alembic upgrade head`` / ``make
migrate`` first, so that schema changes stay a deliberate step), and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import faust

from points.db import make_engine
from points.earning import EarningService
from points.outbox import OutboxStore
from points.settings import Settings, load_settings
from streams.agents.earning import register_earning_agent
from streams.agents.nudges import register_nudge_timer
from streams.app import create_app
from streams.codecs import require_codecs
from streams.fastpath import BatchingApp
from streams.lane_processes import LaneProcesses
from streams.relay import register_relay
from streams.runtime import limit_repeated_logs, tune_garbage_collector
from streams.topics import ensure_topics_or_exit

__all__ = ["build_worker_app", "main"]


def build_worker_app(settings: Settings) -> tuple[BatchingApp, LaneProcesses | None]:
    """The faust app, and the lanes' child processes if it runs them (to shut down after)."""
    # SQLite takes one writer at a time: more lanes would only queue on its lock.
    sqlite = settings.database_url.startswith("sqlite")
    lanes = 1 if sqlite else settings.worker.db_lanes
    app = create_app(settings, batch_lanes=lanes)
    lane_processes = LaneProcesses(lanes) if lanes > 1 and settings.worker.lane_processes else None
    engine = make_engine(settings.database_url, echo=settings.database.echo)
    service = EarningService.from_settings(settings, engine)
    register_earning_agent(app, settings, service, lane_processes)
    register_relay(
        app,
        OutboxStore(engine),
        sign=_partner_request_signer(settings),
        outage_tolerance_s=settings.worker.db_outage_tolerance_s,
    )
    register_nudge_timer(app, settings, engine)
    return app, lane_processes


def _partner_request_signer(settings: Settings) -> Any:
    """Sign partner requests afresh when this worker's relay publishes them — possible only
    where the partner keys are configured; without them requests keep the signature they were
    written with (the partner worker's relay re-signs; see docs/partners.md)."""
    from adapters.config import MissingSigningKey
    from streams.agents.partners import build_partner_registry, request_signer

    try:
        _, registry = build_partner_registry(settings)
    except MissingSigningKey:
        logging.getLogger(__name__).info("no partner keys: relayed requests keep their signature")
        return None
    return request_signer(registry)


def main(argv: list[str] | None = None) -> None:
    require_codecs()
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # aiokafka logs every message it sends at DEBUG; faust's worker set-up leaves its logger
    # enabled for that, so each relayed message built a log record nobody printed (8% of the
    # worker's CPU under py-spy --gil). Warnings and errors still show.
    logging.getLogger("faust").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = ensure_topics_or_exit(settings)  # with the replication resolved
    app, lane_processes = build_worker_app(settings)
    limit_repeated_logs("aiokafka")  # a broker outage: a line every few seconds, not thousands
    tune_garbage_collector(settings.worker.gc_gen0_threshold)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        if lane_processes is not None:
            lane_processes.shutdown()
    sys.exit(worker.exitcode if hasattr(worker, "exitcode") else 0)


if __name__ == "__main__":
    main()

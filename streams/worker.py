"""Entry point: ``python -m streams.worker`` (or ``points-worker``) runs one faust worker.

It creates the topics it needs, migrates nothing (run ``alembic upgrade head`` / ``make
migrate`` first, so that schema changes stay a deliberate step), and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import logging
import sys

import faust

from points.db import make_engine
from points.ingest import IngestService
from points.outbox_store import OutboxStore
from points.settings import Settings, load_settings
from streams.agents.transactions import register_transactions_agent
from streams.app import create_app
from streams.relay import register_relay
from streams.topics import ensure_topics_sync

__all__ = ["build_worker_app", "main"]


def build_worker_app(settings: Settings) -> faust.App:
    app = create_app(settings)
    engine = make_engine(settings.database_url, echo=settings.database.echo)
    service = IngestService(engine, dlq_topic=settings.kafka.topics.points_dlq)
    register_transactions_agent(app, settings, service)
    register_relay(app, OutboxStore(engine))
    return app


def main(argv: list[str] | None = None) -> None:
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    created = ensure_topics_sync(settings)
    if created:
        logging.getLogger(__name__).info("created topics: %s", ", ".join(created))
    app = build_worker_app(settings)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    sys.exit(worker.exitcode if hasattr(worker, "exitcode") else 0)


if __name__ == "__main__":
    main()

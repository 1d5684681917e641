"""Entry point: ``python -m streams.partner_worker`` runs the partner exchange in its own
consumer group (app id ``<POINTS_WORKER__APP_ID>-partners``): every partner's events topic,
the swap-deadline timer, the outbox relay, and ``bank.transactions`` / ``bank.customers`` for
referral qualification (read here with a group of its own, beside the earning worker's).

Topics are created if missing; the schema is migrated by ``alembic upgrade head`` beforehand.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import faust

from adapters.topics import PartnerTopics
from points.outbox_store import OutboxStore
from points.settings import Settings, load_settings
from streams.agents.partners import (
    PARTNERS_CONFIG_ENV,
    TOPIC_PREFIX_ENV,
    build_exchange_service,
    register_partner_agents,
)
from streams.app import create_app
from streams.fastpath import BatchingApp
from streams.relay import register_relay
from streams.topics import ensure_topics_sync

__all__ = ["build_partner_app", "main"]


def build_partner_app(settings: Settings) -> BatchingApp:
    settings = settings.model_copy(
        update={
            "worker": settings.worker.model_copy(
                update={"app_id": f"{settings.worker.app_id}-partners"}
            )
        }
    )
    app = create_app(settings)
    service = build_exchange_service(settings)
    register_partner_agents(app, settings, service, with_bank_topics=True)
    register_relay(app, OutboxStore(service.engine))
    return app


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("faust").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    topics = PartnerTopics(prefix=os.environ.get(TOPIC_PREFIX_ENV, ""), names=settings.kafka.topics)
    from adapters.config import load_partners_config

    path = os.environ.get(PARTNERS_CONFIG_ENV)
    config = load_partners_config(Path(path)) if path else load_partners_config()
    partner_topics = [
        name
        for pid in config.partners
        for name in (topics.events(pid), topics.requests(pid))
    ]
    ensure_topics_sync(settings, partner_topics)
    app = build_partner_app(settings)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    sys.exit(worker.exitcode if hasattr(worker, "exitcode") else 0)


if __name__ == "__main__":
    main()

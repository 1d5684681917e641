"""Entry point: ``python -m streams.partner_worker`` runs the partner exchange in its own
consumer group (app id ``<POINTS_WORKER__APP_ID>-partners``): every partner's events topic,
the swap-deadline timer, the outbox relay, and ``bank.transactions`` / ``bank.customers`` for
referral qualification (read here with a group of its own, beside the earning worker's).

Topics are created if missing; the schema is migrated by ``alembic upgrade head`` beforehand.

Latency tuning (profiled with bench-swaps):

- the consumer's fetch wait is short (``POINTS_WORKER__FETCH_MAX_WAIT_MS``, see fastpath.py).
  aiokafka keeps at most one fetch in flight per broker; a fetch sent while a busy partition
  still had buffered records covers only the other (idle) partitions -- the bank topics, the
  other partners' events -- and the broker holds it for the whole wait, so the busy partition's
  next replies waited up to 1.5 s (0.75 s median) before the worker even saw them;
- the outbox relay runs every ``RELAY_INTERVAL_S`` with rounds of up to ``RELAY_BATCH_SIZE_MAX``
  rows: partner requests wait for the relay before the partner can answer.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import faust

from adapters.topics import PartnerTopics
from points.outbox import OutboxStore
from points.settings import Settings, load_settings
from streams.agents.partners import (
    PARTNERS_CONFIG_ENV,
    TOPIC_PREFIX_ENV,
    build_exchange_service,
    build_partner_registry,
    register_partner_agents,
    request_signer,
)
from streams.app import create_app
from streams.codecs import require_codecs
from streams.fastpath import BatchingApp
from streams.relay import register_relay
from streams.runtime import limit_repeated_logs, tune_garbage_collector
from streams.topics import ensure_topics_or_exit

__all__ = [
    "RELAY_BATCH_SIZE_MAX",
    "RELAY_INTERVAL_S",
    "build_partner_app",
    "main",
]

RELAY_INTERVAL_S = 0.05
RELAY_BATCH_SIZE_MAX = 2000


def partner_settings(settings: Settings) -> Settings:
    """The partner worker's settings: its own app id (consumer group), ``<app id>-partners``."""
    worker = settings.worker.model_copy(update={"app_id": f"{settings.worker.app_id}-partners"})
    return settings.model_copy(update={"worker": worker})


def build_partner_app(settings: Settings) -> BatchingApp:
    settings = partner_settings(settings)
    app = create_app(settings)  # fetch wait: POINTS_WORKER__FETCH_MAX_WAIT_MS (50 ms)
    registry = build_partner_registry(settings)
    service = build_exchange_service(settings, registry=registry)
    register_partner_agents(app, settings, service, with_bank_topics=True)
    register_relay(
        app,
        OutboxStore(service.engine),
        interval_s=RELAY_INTERVAL_S,
        batch_size_max=RELAY_BATCH_SIZE_MAX,
        sign=request_signer(registry[1]),
        outage_tolerance_s=settings.worker.db_outage_tolerance_s,
    )
    return app


def main() -> None:
    require_codecs()
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
    app_id = partner_settings(settings).worker.app_id
    settings = ensure_topics_or_exit(settings, partner_topics, app_id=app_id)
    app = build_partner_app(settings)
    limit_repeated_logs("aiokafka")  # a broker outage: a line every few seconds, not thousands
    tune_garbage_collector(settings.worker.gc_gen0_threshold)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    sys.exit(worker.exitcode if hasattr(worker, "exitcode") else 0)


if __name__ == "__main__":
    main()

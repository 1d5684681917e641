"""A lane's batches run in a child process of its own (streams/lane_processes.py)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from points.db import make_engine
from points.decoding import RawMessage
from points.inbox import inbound_events
from points.ledger import customer_balance
from points.migrate import upgrade
from points.settings import TopicNames
from streams.lane_processes import LaneProcesses

TOPICS = TopicNames()


def purchase(event_id: str, customer: str, offset: int) -> RawMessage:
    body = {
        "event_type": "purchase",
        "event_id": event_id,
        "customer_id": customer,
        "amount_minor": 10_000,
        "currency": "CNY",
        "mcc": "5411",
        "merchant_id": "m-1",
        "channel": "card_present",
        "occurred_at": "2026-11-27T09:00:00+00:00",
    }
    return RawMessage(
        TOPICS.bank_transactions, 0, offset, customer.encode(), json.dumps(body).encode()
    )


def test_a_lane_process_applies_its_batches_once_and_answers_with_the_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child builds its service from the worker's settings (inherited environment),
    applies the batch in its own transaction, and answers with the outcome; the same batch
    again changes nothing (the inbox), and the child keeps serving."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    for name in [k for k in os.environ if k.startswith("POINTS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("POINTS_DATABASE__URL", url)
    lanes = LaneProcesses(2)
    batch = [purchase("p1", "ann", 1), purchase("p2", "ann", 2)]

    async def run() -> tuple[int, int]:
        first = await lanes.runner(1)(batch)
        again = await lanes.runner(1)(batch)
        return first.stored, again.duplicates

    try:
        assert asyncio.run(run()) == (2, 2)
    finally:
        lanes.shutdown()
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(inbound_events)).scalar_one()
        balance = customer_balance(conn, "ann", now=datetime.now(UTC))
    engine.dispose()
    assert stored == 2
    assert balance.available > 0

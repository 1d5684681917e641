"""Drive the real earning code path (the system under test) with generated streams.

``points.earning.EarningService`` on a migrated SQLite file, fed raw Kafka records exactly as
a partition would deliver them: customers interleaved, each customer's messages in their own
arrival order, in batches. The model (tests/model/reference.py) never imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from points.db import make_engine
from points.decoding import RawMessage
from points.earning import EarningService
from points.ledger import customer_balance
from points.migrate import upgrade
from points.rules import load_ruleset
from points.settings import TopicNames
from tests.model.generator import NOW, Stream
from tests.model.reference import DEFAULT_RULES

__all__ = ["Pipeline", "interleave"]


def interleave(streams: Sequence[Stream]) -> list[tuple[str, str, dict[str, Any]]]:
    """Round-robin over customers, each keeping its own order: (customer, topic, body)."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    longest = max((len(s.messages) for s in streams), default=0)
    for i in range(longest):
        for s in streams:
            if i < len(s.messages):
                topic, body = s.messages[i]
                out.append((s.customer_id, topic, body))
    return out


@dataclass
class Pipeline:
    engine: Engine
    service: EarningService
    offset: int = 0

    @classmethod
    def on_sqlite(cls, folder: Path, rules: Path = DEFAULT_RULES) -> Pipeline:
        url = f"sqlite:///{folder / 'ledger.sqlite3'}"
        upgrade(url)
        engine = make_engine(url)
        service = EarningService(engine, load_ruleset(rules), TopicNames(), clock=lambda: NOW)
        return cls(engine, service)

    def feed(self, streams: Sequence[Stream], batch_size: int = 2_000) -> None:
        records = [self._record(c, topic, body) for c, topic, body in interleave(streams)]
        for start in range(0, len(records), batch_size):
            self.service.process(records[start : start + batch_size])

    def _record(self, customer: str, topic: str, body: dict[str, Any]) -> RawMessage:
        self.offset += 1
        return RawMessage(topic, 0, self.offset, customer.encode(), json.dumps(body).encode())

    def balances(self, customers: Iterable[str]) -> dict[str, int]:
        """Each customer's net balance: available points minus receivable debt."""
        with self.engine.connect() as conn:
            result = {}
            for c in customers:
                b = customer_balance(conn, c, now=NOW)
                result[c] = b.available + b.held - b.debt
            return result

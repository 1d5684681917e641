"""A consumed batch's unit of work: inbox, dead letters, effects and outbox in ONE transaction.

Both consumers of the exchange run the same skeleton (points/earning/service.py for the bank's
topics, points/exchange/partner_events.py for the partners')::

    decoded, rejected = classify(...)                 # pure: contracts, keys, signatures
    with ConsumedBatch.begin(engine, dlq_topic=...) as batch:
        fresh = batch.receive(items, accepted, rejected)  # inbox + dead letters; new ids only
        ...plan and write the effects of ``fresh``...     # the consumer's own
        batch.dead_letter(refused_by_the_rules)           # found while planning
        batch.publish(outbox_rows)                        # what to announce
    # committed: the caller acks the batch's offsets only now

The inbox row of each event is its tracking record (the ``eventsourcing`` library's term):
written in the same transaction as the event's effects, so a replayed batch finds its ids there
and changes nothing, and a crash anywhere before the commit leaves no trace. The dead letters
and the outbox rows queued while planning are written last, just before the commit, so each
consumed message has exactly one recorded outcome with its effects (cosmicpython's unit of
work: the caller never touches the transaction; leaving the block early rolls it all back).

Per batch, not per event: the type holds two lists and runs a few statements per batch; it
adds nothing to the per-event work of the earning hot path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from points.dead_letters import RejectedMessage, record_dead_letters
from points.inbox import AcceptedEvent, record_inbox
from points.outbox import enqueue

__all__ = ["ConsumedBatch"]

Item = TypeVar("Item")


class ConsumedBatch:
    """One consumed batch's writes to the inbox, the dead letters and the outbox, inside one
    transaction (``conn``) that also holds the batch's effects."""

    __slots__ = ("_dead", "_dlq_topic", "_outbox", "conn")

    def __init__(self, conn: Connection, *, dlq_topic: str) -> None:
        #: the batch's transaction: the consumer writes its effects here
        self.conn = conn
        self._dlq_topic = dlq_topic
        self._dead: list[RejectedMessage] = []
        self._outbox: list[dict[str, Any]] = []

    @classmethod
    @contextmanager
    def begin(cls, engine: Engine, *, dlq_topic: str) -> Iterator[ConsumedBatch]:
        """Open the batch's transaction; on leaving the block write what was queued and
        commit (an exception rolls everything back, the queued rows included)."""
        with engine.begin() as conn:
            batch = cls(conn, dlq_topic=dlq_topic)
            yield batch
            batch.flush()

    def receive(
        self,
        items: Sequence[Item],
        accepted: Sequence[AcceptedEvent],
        rejected: Sequence[RejectedMessage] = (),
        *,
        bulk: bool = False,
    ) -> list[Item]:
        """Record the batch in the inbox and its rejected messages as dead letters; return the
        items (``accepted[i]`` is the inbox row of ``items[i]``) whose event ids were new, each
        id's first occurrence only, in batch order.

        ``bulk``: see :func:`points.inbox.record_inbox` (PostgreSQL COPY; a concurrent writer
        of the same ids makes this raise, for callers that retry the whole batch)."""
        if len(items) != len(accepted):
            raise ValueError(f"{len(items)} items for {len(accepted)} inbox rows")
        new_ids = record_inbox(self.conn, accepted, bulk=bulk)
        record_dead_letters(self.conn, rejected, dlq_topic=self._dlq_topic)
        fresh: list[Item] = []
        if not new_ids:
            return fresh
        # The hot loop of the earning worker's batches: one set probe per event. An id's first
        # occurrence takes it out of ``waiting``, so a repeat later in the batch is skipped.
        waiting = set(new_ids)
        for item, event in zip(items, accepted, strict=False):  # lengths checked above
            event_id = event.event_id
            if event_id in waiting:
                waiting.discard(event_id)
                fresh.append(item)
        return fresh

    def dead_letter(self, rejected: Sequence[RejectedMessage]) -> None:
        """Dead-letter messages that passed their contract but that planning refused; written
        with the batch's outbox, before the commit."""
        self._dead.extend(rejected)

    def publish(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue outbox rows (points/outbox.py), written before the commit."""
        self._outbox.extend(rows)

    def flush(self) -> None:
        """Write the queued dead letters, then the queued outbox rows (in that order, as the
        relay sends them), into the batch's transaction. :meth:`begin` calls it."""
        dead, self._dead = self._dead, []
        rows, self._outbox = self._outbox, []
        record_dead_letters(self.conn, dead, dlq_topic=self._dlq_topic)
        enqueue(self.conn, rows)

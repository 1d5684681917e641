"""The intake store on SQLite and PostgreSQL: idempotent inbox, deduplicated dead letters."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from points.intake import (
    AcceptedEvent,
    RejectedMessage,
    dead_letters,
    inbound_events,
    outbox,
    record_batch,
)


def accepted(event_id: str, offset: int) -> AcceptedEvent:
    return AcceptedEvent(
        event_id=event_id,
        topic="bank.transactions",
        event_type="purchase",
        customer_id="c1",
        partition=0,
        offset=offset,
        raw=b'{"event_id": "%s"}' % event_id.encode(),
    )


def rejected(offset: int) -> RejectedMessage:
    return RejectedMessage(
        topic="bank.transactions",
        partition=0,
        offset=offset,
        reason_code="invalid_json",
        reason="bad",
        key=b"c1",
        value=b"{",
    )


def count(engine: Engine, table) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_replaying_a_batch_stores_nothing_twice_and_reports_no_new_ids(engine: Engine) -> None:
    """The inbox's primary key makes a replayed batch a no-op, and says which ids were new."""
    batch = [accepted("e1", 0), accepted("e2", 1)]
    with engine.begin() as conn:
        first = record_batch(conn, batch, [rejected(2)], dlq_topic="points.dlq")
    with engine.begin() as conn:
        second = record_batch(
            conn, [*batch, accepted("e3", 3)], [rejected(2)], dlq_topic="points.dlq"
        )
    assert first == {"e1", "e2"}
    assert second == {"e3"}
    assert count(engine, inbound_events) == 3
    assert count(engine, dead_letters) == 1
    assert count(engine, outbox) == 1


def test_a_duplicate_id_inside_one_batch_is_stored_once(engine: Engine) -> None:
    """A producer that sent the same event twice in quick succession still yields one row."""
    with engine.begin() as conn:
        new = record_batch(conn, [accepted("e1", 0), accepted("e1", 1)], [], dlq_topic="points.dlq")
    assert new == {"e1"}
    assert count(engine, inbound_events) == 1


def test_a_dead_letter_is_queued_for_the_dlq_topic_with_its_reason_in_the_headers(
    engine: Engine,
) -> None:
    """Rejected messages reach points.dlq through the outbox, carrying code, reason and source."""
    with engine.begin() as conn:
        record_batch(conn, [], [rejected(5)], dlq_topic="points.dlq")
    with engine.connect() as conn:
        row = conn.execute(select(outbox)).mappings().one()
    assert row["topic"] == "points.dlq"
    assert row["message_value"] == b"{"
    assert row["headers"]["dlq.reason_code"] == "invalid_json"
    assert row["headers"]["dlq.source"] == "bank.transactions/0/5"

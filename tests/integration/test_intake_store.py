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


def test_bulk_recording_skips_stored_ids_and_duplicates_within_the_batch(engine: Engine) -> None:
    """The bulk path (look up, then COPY on PostgreSQL) reports the same new ids as the
    insert path: stored ids and a repeated id inside the batch are not new."""
    with engine.begin() as conn:
        record_batch(conn, [accepted("e1", 0)], [], dlq_topic="points.dlq")
    batch = [accepted("e1", 1), accepted("e2", 2), accepted("e2", 3), accepted("e3", 4)]
    with engine.begin() as conn:
        new = record_batch(conn, batch, [], dlq_topic="points.dlq", bulk=True)
    assert new == {"e2", "e3"}
    assert count(engine, inbound_events) == 3
    with engine.connect() as conn:
        payload = conn.execute(
            select(inbound_events.c.payload).where(inbound_events.c.event_id == "e2")
        ).scalar_one()
    assert payload == {"event_id": "e2"}


def test_bulk_recording_refuses_an_id_a_concurrent_writer_stored_first(pg_url: str) -> None:
    """Two writers bulk-record the same id at once: the second waits for the first's commit,
    then fails with a unique violation (its whole transaction rolls back for a retry) rather
    than applying the event a second time."""
    import threading

    import pytest
    from sqlalchemy.exc import IntegrityError

    from points.db import make_engine
    from points.migrate import upgrade
    from tests.conftest import reset_pg_schema

    reset_pg_schema(pg_url)
    upgrade(pg_url)
    engine = make_engine(pg_url)
    errors: list[BaseException] = []
    try:
        first = engine.connect()
        first.begin()
        assert record_batch(first, [accepted("x1", 0)], [], dlq_topic="d", bulk=True) == {"x1"}

        def second_writer() -> None:
            try:
                with engine.begin() as conn:
                    record_batch(conn, [accepted("x1", 0)], [], dlq_topic="d", bulk=True)
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)

        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the second writer should wait for the first's commit"
        first.commit()
        first.close()
        thread.join(timeout=30)
        assert len(errors) == 1
        with pytest.raises(IntegrityError):
            raise errors[0]
        assert count(engine, inbound_events) == 1
    finally:
        engine.dispose()

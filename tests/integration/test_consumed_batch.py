"""The consumed batch's records on SQLite and PostgreSQL: idempotent inbox, deduplicated dead
letters, and the unit of work that writes them with the outbox in one transaction."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from points.consumed_batch import ConsumedBatch
from points.dead_letters import RejectedMessage, dead_letters, record_dead_letters
from points.inbox import AcceptedEvent, inbound_events, record_inbox
from points.outbox import outbox_table


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
    events = [accepted("e1", 0), accepted("e2", 1)]
    with ConsumedBatch.begin(engine, dlq_topic="points.dlq") as batch:
        first = batch.receive(events, events, [rejected(2)])
    replayed = [*events, accepted("e3", 3)]
    with ConsumedBatch.begin(engine, dlq_topic="points.dlq") as batch:
        second = batch.receive(replayed, replayed, [rejected(2)])
    assert [e.event_id for e in first] == ["e1", "e2"]
    assert [e.event_id for e in second] == ["e3"]
    assert count(engine, inbound_events) == 3
    assert count(engine, dead_letters) == 1
    assert count(engine, outbox_table) == 1


def test_a_duplicate_id_inside_one_batch_is_stored_once(engine: Engine) -> None:
    """A producer that sent the same event twice in quick succession still yields one row."""
    events = [accepted("e1", 0), accepted("e1", 1)]
    with engine.begin() as conn:
        new = record_inbox(conn, events)
    assert new == {"e1"}
    assert count(engine, inbound_events) == 1


def test_a_batch_goes_on_with_the_first_occurrence_of_each_new_id_in_batch_order(
    engine: Engine,
) -> None:
    """``receive`` hands back the consumer's own items for the new ids only: a repeated id
    once (its first occurrence), an id stored by an earlier batch not at all."""
    with engine.begin() as conn:
        record_inbox(conn, [accepted("old", 0)])
    events = [accepted("e2", 1), accepted("old", 2), accepted("e1", 3), accepted("e2", 4)]
    items = [f"item@{e.offset}" for e in events]
    with ConsumedBatch.begin(engine, dlq_topic="points.dlq") as batch:
        fresh = batch.receive(items, events)
    assert fresh == ["item@1", "item@3"]


def test_what_a_batch_queued_is_written_at_its_commit_and_dropped_with_its_rollback(
    engine: Engine,
) -> None:
    """Dead letters found while planning and outbox rows are written with the batch's inbox
    rows, or -- when the batch fails before its commit -- not at all."""
    row = {"topic": "points.ledger", "message_key": b"c1", "message_value": b"{}",
           "headers": {}, "dedupe_key": "ledger:x"}

    class Boom(Exception):
        pass

    try:
        with ConsumedBatch.begin(engine, dlq_topic="points.dlq") as batch:
            batch.receive([accepted("e1", 0)], [accepted("e1", 0)])
            batch.dead_letter([rejected(7)])
            batch.publish([row])
            raise Boom
    except Boom:
        pass
    assert (count(engine, inbound_events), count(engine, dead_letters),
            count(engine, outbox_table)) == (0, 0, 0)
    with ConsumedBatch.begin(engine, dlq_topic="points.dlq") as batch:
        batch.receive([accepted("e1", 0)], [accepted("e1", 0)])
        batch.dead_letter([rejected(7)])
        batch.publish([row])
    with engine.connect() as conn:
        keys = conn.execute(
            select(outbox_table.c.dedupe_key).order_by(outbox_table.c.id)
        ).scalars().all()
    assert count(engine, inbound_events) == 1
    assert count(engine, dead_letters) == 1
    assert keys == ["dlq:bank.transactions:0:7", "ledger:x"]


def test_a_dead_letter_is_queued_for_the_dlq_topic_with_its_reason_in_the_headers(
    engine: Engine,
) -> None:
    """Rejected messages reach points.dlq through the outbox, carrying code, reason and source."""
    with engine.begin() as conn:
        record_dead_letters(conn, [rejected(5)], dlq_topic="points.dlq")
    with engine.connect() as conn:
        row = conn.execute(select(outbox_table)).mappings().one()
    assert row["topic"] == "points.dlq"
    assert row["message_value"] == b"{"
    assert row["headers"]["dlq.reason_code"] == "invalid_json"
    assert row["headers"]["dlq.source"] == "bank.transactions/0/5"


def test_bulk_recording_skips_stored_ids_and_duplicates_within_the_batch(engine: Engine) -> None:
    """The bulk path (look up, then COPY on PostgreSQL) reports the same new ids as the
    insert path: stored ids and a repeated id inside the batch are not new."""
    with engine.begin() as conn:
        record_inbox(conn, [accepted("e1", 0)])
    batch = [accepted("e1", 1), accepted("e2", 2), accepted("e2", 3), accepted("e3", 4)]
    with engine.begin() as conn:
        new = record_inbox(conn, batch, bulk=True)
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
        assert record_inbox(first, [accepted("x1", 0)], bulk=True) == {"x1"}

        def second_writer() -> None:
            try:
                with engine.begin() as conn:
                    record_inbox(conn, [accepted("x1", 0)], bulk=True)
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


def test_items_and_inbox_rows_must_pair_up(engine: Engine) -> None:
    """``receive`` pairs each item with its inbox row: lists of different lengths are a bug in
    the consumer and fail before anything is written."""
    import pytest

    with (
        pytest.raises(ValueError, match="2 items for 1 inbox rows"),
        ConsumedBatch.begin(engine, dlq_topic="points.dlq") as batch,
    ):
        batch.receive(["a", "b"], [accepted("e1", 0)])
    assert count(engine, inbound_events) == 0

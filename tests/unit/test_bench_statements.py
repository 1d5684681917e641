"""bench-pipeline's per-statement account: what a statement is called, and that the bench's
own statements (its reads of pg_stat_statements, its marked progress polls) never count."""

from __future__ import annotations

from benchmarks import pg_statements


def test_statements_are_named_by_what_they_do_to_which_table() -> None:
    assert pg_statements.label("INSERT INTO ledger_legs (a) VALUES ($1)") == "INSERT ledger_legs"
    assert pg_statements.label('COPY "inbound_events" (event_id) FROM STDIN') == (
        "COPY inbound_events"
    )
    replay_check = "SELECT event_id FROM inbound_events WHERE event_id = ANY(CAST($1 AS text[]))"
    assert pg_statements.label(replay_check) == "SELECT inbound_events"
    assert pg_statements.label("COMMIT") == "COMMIT"


def test_the_bench_own_polls_and_statistics_reads_are_left_out() -> None:
    """A marked poll has the same label as the replay check it would otherwise inflate."""
    poll = f"SELECT count(*) FROM inbound_events {pg_statements.BENCH_MARKER}"
    assert pg_statements.label(poll) == "SELECT inbound_events"
    assert not pg_statements._ours(poll)
    assert not pg_statements._ours("SELECT query FROM pgstats.pg_stat_statements")
    assert pg_statements._ours("SELECT event_id FROM inbound_events WHERE event_id = ANY($1)")

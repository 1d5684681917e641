"""``verify`` and ``dlq list|replay`` on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import select, text

from points.consumed_batch import ConsumedBatch
from points.dead_letters import RejectedMessage, record_dead_letters
from points.inbox import AcceptedEvent
from points.ledger import Earn
from points.outbox import outbox_table
from tests.integration.cli.support import DAY, NOW, cli, cli_json, engine_for, seed


def test_verify_of_a_sound_ledger_exits_0(migrated_url: str) -> None:
    """A ledger written only through the API verifies clean."""
    seed(migrated_url, Earn("earn:1", "c1", 100, NOW + 90 * DAY))
    result = cli(migrated_url, "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ledger ok: 1 entries")
    assert cli_json(migrated_url, "verify")["ok"] is True


def corrupt_wallet_balance(url: str, customer: str, delta: int) -> None:
    """Change a cached wallet balance behind the ledger's back."""
    update = text(
        "UPDATE ledger_balances SET balance = balance + :delta WHERE account_id ="
        " (SELECT id FROM ledger_accounts WHERE owner = :owner AND kind = 'wallet')")
    with engine_for(url) as engine, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # PostgreSQL refuses direct balance updates with a guard trigger; the test turns
            # it off for this one statement (inside this transaction) to simulate tampering
            # or a bug that got past it. SQLite has no such guard for UPDATE.
            conn.execute(text(
                "ALTER TABLE ledger_balances DISABLE TRIGGER ledger_balances_only_via_legs"))
            conn.execute(update, {"delta": delta, "owner": customer})
            conn.execute(text(
                "ALTER TABLE ledger_balances ENABLE TRIGGER ledger_balances_only_via_legs"))
        else:
            conn.execute(update, {"delta": delta, "owner": customer})


def test_verify_reports_a_corrupted_balance_and_exits_1(migrated_url: str) -> None:
    """A cached balance that no longer matches its legs and lots is listed as violations,
    and verify exits 1."""
    seed(migrated_url, Earn("earn:1", "c1", 100, NOW + 90 * DAY))
    corrupt_wallet_balance(migrated_url, "c1", 5)
    result = cli(migrated_url, "verify")
    assert result.exit_code == 1
    assert "cached_equals_summed" in result.stdout and "c1/wallet@bank" in result.stdout
    assert "cached 105 summed 100" in result.stdout
    assert result.stderr.startswith("error: violations_found:")
    data = cli_json(migrated_url, "verify", exit_code=1)
    assert data["ok"] is False
    assert {v["check"] for v in data["violations"]} == {"cached_equals_summed",
                                                        "lots_match_wallets"}


def seed_dead_letters(url: str) -> None:
    """Three rejected messages: two invalid JSON, one contract violation."""
    rejected = [
        RejectedMessage("bank.transactions", 0, 10, "invalid_json", "Expecting value",
                        b"c1", b"{not json"),
        RejectedMessage("bank.transactions", 1, 11, "contract_violation",
                        "amount_minor: Input should be greater than 0", b"c2", b'{"x": 1}'),
        RejectedMessage("customer.activity", 0, 12, "invalid_json", "Expecting value",
                        None, b"\xff\xfe"),
    ]
    with engine_for(url) as engine, engine.begin() as conn:
        record_dead_letters(conn, rejected, dlq_topic="points.dlq")


def replay_rows(url: str) -> list[tuple[str, str, bytes | None, bytes, dict[str, str]]]:
    with engine_for(url) as engine, engine.connect() as conn:
        rows = conn.execute(
            select(outbox_table.c.dedupe_key, outbox_table.c.topic, outbox_table.c.message_key,
                   outbox_table.c.message_value, outbox_table.c.headers)
            .where(outbox_table.c.dedupe_key.like("dlq-replay:%")).order_by(outbox_table.c.id)
        ).all()
    return [(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in rows]


def test_dlq_list_shows_letters_and_filters_by_reason(migrated_url: str) -> None:
    """dlq list shows source position and reason; --reason narrows it to one code."""
    seed_dead_letters(migrated_url)
    data = cli_json(migrated_url, "dlq", "list")
    assert [(d["id"], d["reason_code"]) for d in data["dead_letters"]] == [
        (1, "invalid_json"), (2, "contract_violation"), (3, "invalid_json")]
    only = cli_json(migrated_url, "dlq", "list", "--reason", "contract_violation")
    assert [d["id"] for d in only["dead_letters"]] == [2]
    human = cli(migrated_url, "dlq", "list", "--limit", "2")
    assert human.exit_code == 0, human.output
    assert "bank.transactions/0/10" in human.stdout and "customer.activity" not in human.stdout


def test_dlq_replay_queues_one_outbox_row_per_letter_even_when_run_twice(
        migrated_url: str) -> None:
    """Replaying letters queues their original key and bytes for the source topic with the
    operator in the headers; replaying them again queues nothing more."""
    seed_dead_letters(migrated_url)
    first = cli(migrated_url, "dlq", "replay", "1", "3", "--operator", "alice")
    assert first.exit_code == 0, first.output
    assert "queued 2 letters for replay" in first.stdout
    again = cli_json(migrated_url, "dlq", "replay", "1", "3", "--operator", "bob")
    assert (again["queued"], again["already_queued"]) == ([], [1, 3])

    rows = replay_rows(migrated_url)
    assert [(key, topic, mkey, value) for key, topic, mkey, value, _ in rows] == [
        ("dlq-replay:1", "bank.transactions", b"c1", b"{not json"),
        ("dlq-replay:3", "customer.activity", None, b"\xff\xfe"),
    ]
    headers = rows[0][4]
    assert headers["dlq.replayed_by"] == "alice"
    assert headers["dlq.source"] == "bank.transactions/0/10"
    listed = cli_json(migrated_url, "dlq", "list", "--not-replayed")
    assert [d["id"] for d in listed["dead_letters"]] == [2]
    replayed = cli_json(migrated_url, "dlq", "list", "--reason", "invalid_json")
    assert [d["replayed_by"] for d in replayed["dead_letters"]] == ["alice", "alice"]


def test_dlq_replay_by_reason_code_and_dry_run(migrated_url: str) -> None:
    """--reason selects letters by code; --dry-run lists them and writes nothing."""
    seed_dead_letters(migrated_url)
    dry = cli_json(migrated_url, "dlq", "replay", "--reason", "invalid_json", "--dry-run")
    assert [d["id"] for d in dry["dead_letters"]] == [1, 3]
    assert replay_rows(migrated_url) == []
    done = cli_json(migrated_url, "dlq", "replay", "--reason", "invalid_json",
                    "--operator", "alice")
    assert done["queued"] == [1, 3]
    assert [row[0] for row in replay_rows(migrated_url)] == ["dlq-replay:1", "dlq-replay:3"]


def test_dlq_replay_refuses_unknown_ids_and_ambiguous_selection(migrated_url: str) -> None:
    """Unknown ids exit 3 before anything is queued; ids with --reason, neither, or no
    operator exit 2."""
    seed_dead_letters(migrated_url)
    unknown = cli(migrated_url, "dlq", "replay", "1", "99", "--operator", "alice")
    assert unknown.exit_code == 3
    assert "no dead letter with id 99" in unknown.stderr
    assert replay_rows(migrated_url) == []
    assert cli(migrated_url, "dlq", "replay", "--operator", "alice").exit_code == 2
    assert cli(migrated_url, "dlq", "replay", "1", "--reason", "invalid_json",
               "--operator", "alice").exit_code == 2
    assert cli(migrated_url, "dlq", "replay", "1").exit_code == 2


def test_dlq_replay_skips_letters_whose_event_was_accepted_before(migrated_url: str) -> None:
    """A message the rules refused after intake accepted it has its event id in the inbox:
    the worker would drop a replay as a duplicate, so replay skips it and says so."""
    body = {"event_id": "evt-7", "customer_id": "c7", "event_type": "refund"}
    accepted = AcceptedEvent("evt-7", "bank.transactions", "refund", "c7", 0, 30,
                             json.dumps(body).encode())
    with engine_for(migrated_url) as engine, ConsumedBatch.begin(
        engine, dlq_topic="points.dlq"
    ) as batch:
        batch.receive([accepted], [accepted])
        batch.dead_letter([RejectedMessage("bank.transactions", 0, 30, "refund_mismatch",
                                           "other customer", b"c7", json.dumps(body).encode())])
    seed_dead_letters(migrated_url)
    data = cli_json(migrated_url, "dlq", "replay", "--reason", "refund_mismatch",
                    "--operator", "alice")
    assert (data["queued"], data["skipped_already_accepted"]) == ([], [1])
    assert replay_rows(migrated_url) == []


def test_dlq_replay_refuses_signed_partner_messages(migrated_url: str) -> None:
    """A partner message's signature lived in Kafka headers the DLQ does not keep, so its
    replay could only fail again: refused (exit 2), nothing queued; --topic narrows a
    --reason selection to what can be replayed."""
    seed_dead_letters(migrated_url)
    with engine_for(migrated_url) as engine, engine.begin() as conn:
        record_dead_letters(conn, [RejectedMessage("partner.ridehail.events", 0, 5,
                                                   "invalid_json", "Expecting value", b"c9",
                                                   b"{")], dlq_topic="points.dlq")
    refused = cli(migrated_url, "dlq", "replay", "--reason", "invalid_json",
                  "--operator", "alice")
    assert refused.exit_code == 2
    assert "letters 4 are signed partner messages" in refused.stderr
    assert replay_rows(migrated_url) == []
    narrowed = cli_json(migrated_url, "dlq", "replay", "--reason", "invalid_json",
                        "--topic", "bank.transactions", "--operator", "alice")
    assert narrowed["queued"] == [1]

"""Operator adjustments and maker-checker (``adjust``, ``adjust approve|reject|list``)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError

from points.ledger import Earn
from points.operations_tables import adjustment_requests
from tests.integration.cli.support import DAY, NOW, cli, cli_json, engine_for, seed


def balance(url: str, customer: str = "c1") -> int:
    return int(cli_json(url, "balance", customer)["available"])


def test_adjust_below_the_threshold_applies_and_records_the_operator(
        migrated_url: str) -> None:
    """A small credit is applied at once; the entry's reason carries operator and note."""
    result = cli(migrated_url, "adjust", "c1", "500", "--reason", "goodwill, ticket 42",
                 "--operator", "alice", "--key", "adj-1")
    assert result.exit_code == 0, result.output
    assert "adjusted c1 by +500: entry" in result.stdout
    assert balance(migrated_url) == 500
    entry = cli_json(migrated_url, "entry", "show", "adj-1")
    assert entry["reason"] == {"operator": "alice", "note": "goodwill, ticket 42"}


def test_adjust_accepts_a_negative_delta(migrated_url: str) -> None:
    """A debit is written as ``adjust CUSTOMER -N`` (no ``--`` needed)."""
    seed(migrated_url, Earn("earn:1", "c1", 300, NOW + 90 * DAY))
    result = cli(migrated_url, "adjust", "c1", "-120", "--reason", "duplicate earning",
                 "--operator", "alice")
    assert result.exit_code == 0, result.output
    assert balance(migrated_url) == 180


def test_adjust_retry_with_the_same_key_is_a_replay_and_a_change_is_a_conflict(
        migrated_url: str) -> None:
    """The same key and request changes nothing (exit 0); another delta exits 5."""
    args = ["adjust", "c1", "250", "--reason", "r", "--operator", "alice", "--key", "k-1"]
    assert cli(migrated_url, *args).exit_code == 0
    again = cli(migrated_url, *args)
    assert again.exit_code == 0, again.output
    assert "already done earlier under key k-1" in again.stdout
    conflict = cli(migrated_url, "adjust", "c1", "260", "--reason", "r", "--operator", "alice",
                   "--key", "k-1")
    assert conflict.exit_code == 5
    assert conflict.stderr.startswith("error: idempotency_conflict:")
    assert balance(migrated_url) == 250


def test_adjust_debit_beyond_the_balance_is_refused(migrated_url: str) -> None:
    """Taking more than the wallet holds exits 4 (insufficient points)."""
    seed(migrated_url, Earn("earn:1", "c1", 100, NOW + 90 * DAY))
    result = cli(migrated_url, "adjust", "c1", "-101", "--reason", "r", "--operator", "bob")
    assert result.exit_code == 4
    assert "insufficient_points" in result.stderr
    assert balance(migrated_url) == 100


@pytest.mark.parametrize("missing", ["--reason", "--operator"])
def test_adjust_requires_a_reason_and_an_operator(migrated_url: str, missing: str) -> None:
    """Without --reason or --operator nothing is written (usage error, exit 2)."""
    args = {"--reason": "r", "--operator": "alice"}
    del args[missing]
    result = cli(migrated_url, "adjust", "c1", "5", *[x for kv in args.items() for x in kv])
    assert result.exit_code == 2
    assert missing in result.output
    blank = cli(migrated_url, "adjust", "c1", "5", "--reason", " ", "--operator", "alice")
    assert blank.exit_code == 2


def test_adjust_above_the_threshold_waits_for_a_second_operator(migrated_url: str) -> None:
    """Above the threshold: a pending request (exit 6), nothing in the ledger; the requester
    cannot approve it (exit 4); another operator can, once (then exit 4)."""
    pending = cli(migrated_url, "--json", "adjust", "c1", "20000", "--reason", "migration fix",
                  "--operator", "alice", "--key", "big-1")
    assert pending.exit_code == 6, pending.output
    assert "approval_required" in pending.stderr
    request_id = str(json.loads(pending.stdout)["request_id"])
    listed = cli_json(migrated_url, "adjust", "list")
    assert [(r["request_id"], r["status"]) for r in listed["requests"]] == [
        (int(request_id), "pending")]
    assert cli(migrated_url, "balance", "c1").exit_code == 3  # no account yet: nothing written

    same = cli(migrated_url, "adjust", "approve", request_id, "--operator", "alice")
    assert same.exit_code == 4
    assert "same_operator" in same.stderr

    approved = cli(migrated_url, "adjust", "approve", request_id, "--operator", "bob")
    assert approved.exit_code == 0, approved.output
    assert balance(migrated_url) == 20_000
    entry = cli_json(migrated_url, "entry", "show", "big-1")
    assert entry["reason"] == {"operator": "bob", "note": "migration fix",
                               "source_event": f"adjustment_request:{request_id}"}

    twice = cli(migrated_url, "adjust", "approve", request_id, "--operator", "carol")
    assert twice.exit_code == 4
    assert "already_decided" in twice.stderr
    assert balance(migrated_url) == 20_000
    decided = cli_json(migrated_url, "adjust", "list", "--status", "approved")
    assert [(r["requested_by"], r["decided_by"]) for r in decided["requests"]] == [
        ("alice", "bob")]

    # Asking again with the same key reports the decision and changes nothing.
    replay = cli(migrated_url, "adjust", "c1", "20000", "--reason", "migration fix",
                 "--operator", "alice", "--key", "big-1")
    assert replay.exit_code == 0, replay.output
    assert "was approved by bob" in replay.stdout


def test_the_approval_threshold_comes_from_the_environment(migrated_url: str) -> None:
    """POINTS_OPS__APPROVAL_THRESHOLD lowers the amount that needs a second operator."""
    env = {"POINTS_OPS__APPROVAL_THRESHOLD": "100"}
    assert cli(migrated_url, "adjust", "c1", "100", "--reason", "r", "--operator", "a",
               env=env).exit_code == 0
    assert cli(migrated_url, "adjust", "c1", "-101", "--reason", "r", "--operator", "a",
               env=env).exit_code == 6


def test_adjust_reject_leaves_the_ledger_alone(migrated_url: str) -> None:
    """A rejected request writes nothing and cannot be approved later; the requester cannot
    reject their own request either."""
    seed(migrated_url, Earn("earn:1", "c1", 50, NOW + 90 * DAY))
    pending = cli(migrated_url, "adjust", "c1", "15000", "--reason", "r", "--operator", "alice")
    assert pending.exit_code == 6
    own = cli(migrated_url, "adjust", "reject", "1", "--operator", "alice")
    assert own.exit_code == 4
    rejected = cli(migrated_url, "adjust", "reject", "1", "--operator", "bob")
    assert rejected.exit_code == 0, rejected.output
    assert "rejected request 1 of alice" in rejected.stdout
    assert cli(migrated_url, "adjust", "approve", "1", "--operator", "carol").exit_code == 4
    assert balance(migrated_url) == 50
    assert cli_json(migrated_url, "adjust", "list")["requests"] == []


def test_approving_a_debit_the_wallet_no_longer_covers_keeps_the_request_pending(
        migrated_url: str) -> None:
    """If the ledger refuses at approval time, the approval is rolled back with it."""
    seed(migrated_url, Earn("earn:1", "c1", 30_000, NOW + 90 * DAY))
    assert cli(migrated_url, "adjust", "c1", "-25000", "--reason", "r",
               "--operator", "alice").exit_code == 6
    assert cli(migrated_url, "adjust", "c1", "-10000", "--reason", "r",
               "--operator", "alice").exit_code == 0
    refused = cli(migrated_url, "adjust", "approve", "1", "--operator", "bob")
    assert refused.exit_code == 4
    assert "insufficient_points" in refused.stderr
    assert [r["status"] for r in cli_json(migrated_url, "adjust", "list")["requests"]] == [
        "pending"]


def test_approving_an_unknown_request_exits_3(migrated_url: str) -> None:
    """approve and reject of a request id that does not exist: not found."""
    assert cli(migrated_url, "adjust", "approve", "999", "--operator", "bob").exit_code == 3
    assert cli(migrated_url, "adjust", "reject", "999", "--operator", "bob").exit_code == 3


def test_the_database_refuses_a_decision_by_the_requester(migrated_url: str) -> None:
    """Maker-checker does not rest on the CLI alone: the table's CHECK refuses a request
    decided by its own requester, whoever writes the row."""
    assert cli(migrated_url, "adjust", "c1", "15000", "--reason", "r",
               "--operator", "alice").exit_code == 6
    with engine_for(migrated_url) as engine:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(update(adjustment_requests).values(
                status="approved", decided_by="alice", decided_at=text("CURRENT_TIMESTAMP")))
        with engine.connect() as conn:
            status = conn.execute(text("SELECT status FROM adjustment_requests")).scalar_one()
    assert status == "pending"

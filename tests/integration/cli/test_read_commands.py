"""``balance``, ``statement``, ``explain`` and ``entry show`` on SQLite and PostgreSQL."""

from __future__ import annotations

from points.ledger import Clawback, Earn, Hold, Reason, Spend
from tests.integration.cli.support import DAY, NOW, cli, cli_json, seed

EARN_REASON = Reason(rule_ids=("base-everyday", "first-swipe"), ruleset_version="test-simple-1",
                     source_event="evt-1")


def seed_customer(url: str) -> None:
    """c1: 1,000 expiring in 20 days (200 of it held), 500 expiring in 60 days."""
    seed(url,
         Earn("earn:evt-1", "c1", 1_000, NOW + 20 * DAY, reason=EARN_REASON),
         Earn("earn:evt-2", "c1", 500, NOW + 60 * DAY,
              reason=Reason(rule_ids=("base-everyday",), source_event="evt-2")),
         Hold("hold:h1", "c1", 200, NOW + 2 * DAY, to_partner="ride"))


def test_balance_shows_available_held_debt_and_expiring_windows(migrated_url: str) -> None:
    """The balance splits into available, held and debt, and counts what expires within 30
    and 90 days (the hold took its points from the soonest-expiring lot)."""
    seed_customer(migrated_url)
    data = cli_json(migrated_url, "balance", "c1")
    assert (data["available"], data["held"], data["debt"]) == (1_300, 200, 0)
    assert (data["expiring_30d"], data["expiring_90d"]) == (800, 1_300)

    result = cli(migrated_url, "balance", "c1")
    assert result.exit_code == 0, result.output
    assert "available" in result.stdout and "1,300" in result.stdout
    assert "expiring within 90 days" in result.stdout


def test_balance_of_an_unknown_customer_exits_3(migrated_url: str) -> None:
    """A customer with no accounts is reported as not found, in one line on stderr."""
    result = cli(migrated_url, "balance", "nobody")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: not_found: customer 'nobody' has no accounts in program 'bank'"]


def test_statement_lists_entries_newest_first_within_the_limit(migrated_url: str) -> None:
    """The statement shows each entry's effect on wallet and held, newest first."""
    seed_customer(migrated_url)
    data = cli_json(migrated_url, "statement", "c1", "--limit", "2")
    assert [e["idempotency_key"] for e in data["entries"]] == ["hold:h1", "earn:evt-2"]
    assert (data["entries"][0]["wallet_delta"], data["entries"][0]["held_delta"]) == (-200, 200)

    result = cli(migrated_url, "statement", "c1")
    assert result.exit_code == 0, result.output
    assert "earn:evt-1" in result.stdout and "rules base-everyday, first-swipe" in result.stdout


def test_statement_rejects_a_limit_out_of_range(migrated_url: str) -> None:
    """--limit 0 is a usage error (exit 2)."""
    assert cli(migrated_url, "statement", "c1", "--limit", "0").exit_code == 2


def test_explain_shows_lots_reasons_holds_and_debt(migrated_url: str) -> None:
    """explain ties the balance to open lots, the reasons of recent entries (rule ids,
    ruleset version, source event), pending holds and clawback debt."""
    seed_customer(migrated_url)
    seed(migrated_url,
         Earn("earn:d1", "c2", 100, NOW + 30 * DAY),
         Spend("spend:d1", "c2", 100),
         Clawback("clawback:d1", "earn:d1", reason=Reason(source_event="refund-1")))
    data = cli_json(migrated_url, "explain", "c1")
    assert [(lot["remaining"], lot["amount"]) for lot in data["lots"]] == [(800, 1_000),
                                                                         (500, 500)]
    assert [h["hold_key"] for h in data["pending_holds"]] == ["hold:h1"]
    earn = next(e for e in data["recent_entries"] if e["idempotency_key"] == "earn:evt-1")
    assert earn["reason"] == {"rule_ids": ["base-everyday", "first-swipe"],
                              "ruleset_version": "test-simple-1", "source_event": "evt-1"}

    result = cli(migrated_url, "explain", "c1")
    assert result.exit_code == 0, result.output
    assert "available 1,300 = what is left in 2 open lots (1,300)" in result.stdout
    assert "rules base-everyday, first-swipe (test-simple-1); event evt-1" in result.stdout
    assert "hold:h1" in result.stdout

    debt = cli(migrated_url, "explain", "c2")
    assert debt.exit_code == 0, debt.output
    assert "debt 100: clawed back after the points were spent" in debt.stdout
    assert "event refund-1" in debt.stdout


def test_entry_show_prints_the_entry_with_legs_and_reason(migrated_url: str) -> None:
    """entry show finds an entry by its key; an unknown key exits 3."""
    seed_customer(migrated_url)
    data = cli_json(migrated_url, "entry", "show", "hold:h1")
    assert (data["kind"], data["status"], data["amount"]) == ("hold", "committed", 200)
    assert data["legs"] == [{"debit": "c1/wallet@bank", "credit": "c1/held@bank",
                             "amount": 200}]

    result = cli(migrated_url, "entry", "show", "earn:evt-1")
    assert result.exit_code == 0, result.output
    assert "bank/issuance@bank" in result.stdout and "event evt-1" in result.stdout

    missing = cli(migrated_url, "entry", "show", "no-such-key")
    assert missing.exit_code == 3
    assert "no ledger entry with key 'no-such-key'" in missing.stderr

"""``reverse``, ``holds list|void|expire`` and ``expire`` (lots) on SQLite and PostgreSQL."""

from __future__ import annotations

from points.ledger import Earn, Hold
from tests.integration.cli.support import DAY, NOW, cli, cli_json, seed


def test_reverse_undoes_an_entry_once_and_records_the_operator(migrated_url: str) -> None:
    """reverse writes the mirror entry with the operator; a second reversal exits 4."""
    seed(migrated_url, Earn("earn:1", "c1", 400, NOW + 90 * DAY))
    result = cli(migrated_url, "reverse", "earn:1", "--reason", "fraudulent purchase",
                 "--operator", "alice", "--key", "rev-1")
    assert result.exit_code == 0, result.output
    assert "reversed earn:1" in result.stdout
    entry = cli_json(migrated_url, "entry", "show", "rev-1")
    assert entry["kind"] == "reverse"
    assert entry["reason"] == {"operator": "alice", "note": "fraudulent purchase"}
    assert cli_json(migrated_url, "balance", "c1")["available"] == 0

    again = cli(migrated_url, "reverse", "earn:1", "--reason", "again", "--operator", "bob")
    assert again.exit_code == 4
    assert "already_reversed" in again.stderr


def test_reverse_of_an_unknown_entry_exits_3(migrated_url: str) -> None:
    """Reversing a key that names no committed entry: not found."""
    result = cli(migrated_url, "reverse", "nope", "--reason", "r", "--operator", "alice")
    assert result.exit_code == 3
    assert "unknown_entry" in result.stderr


def test_holds_list_shows_pending_holds_and_flags_overdue_ones(migrated_url: str) -> None:
    """holds list shows every pending hold; --overdue only those past their timeout."""
    seed(migrated_url, Earn("earn:1", "c1", 500, NOW + 90 * DAY),
         Earn("earn:2", "c2", 500, NOW + 90 * DAY))
    seed(migrated_url, Hold("hold:late", "c1", 100, NOW - DAY, to_partner="ride"),
         Hold("hold:fresh", "c2", 50, NOW + DAY), now=NOW - 2 * DAY)
    data = cli_json(migrated_url, "holds", "list")
    assert [(h["hold_key"], h["overdue"]) for h in data["holds"]] == [
        ("hold:late", True), ("hold:fresh", False)]
    only_c2 = cli_json(migrated_url, "holds", "list", "--customer", "c2")
    assert [h["hold_key"] for h in only_c2["holds"]] == ["hold:fresh"]
    overdue = cli(migrated_url, "holds", "list", "--overdue")
    assert overdue.exit_code == 0, overdue.output
    assert "hold:late" in overdue.stdout and "OVERDUE" in overdue.stdout
    assert "hold:fresh" not in overdue.stdout


def test_holds_void_returns_the_points_once(migrated_url: str) -> None:
    """Voiding a hold gives the points back; voiding it again exits 4, an unknown hold 3."""
    seed(migrated_url, Earn("earn:1", "c1", 500, NOW + 90 * DAY),
         Hold("hold:1", "c1", 200, NOW + DAY))
    result = cli(migrated_url, "holds", "void", "hold:1", "--reason", "partner timeout",
                 "--operator", "alice", "--key", "void-1")
    assert result.exit_code == 0, result.output
    balance = cli_json(migrated_url, "balance", "c1")
    assert (balance["available"], balance["held"]) == (500, 0)
    assert cli_json(migrated_url, "entry", "show", "void-1")["reason"]["operator"] == "alice"

    again = cli(migrated_url, "holds", "void", "hold:1", "--reason", "r", "--operator", "bob")
    assert again.exit_code == 4
    assert "hold_already_resolved" in again.stderr
    unknown = cli(migrated_url, "holds", "void", "hold:x", "--reason", "r", "--operator", "b")
    assert unknown.exit_code == 3


def test_holds_expire_voids_the_timed_out_holds_only(migrated_url: str) -> None:
    """holds expire voids holds whose timeout passed and leaves the others pending; run
    again, it has nothing left to do."""
    seed(migrated_url, Earn("earn:1", "c1", 500, NOW + 90 * DAY))
    seed(migrated_url, Hold("hold:late", "c1", 100, NOW - DAY),
         Hold("hold:fresh", "c1", 50, NOW + DAY), now=NOW - 2 * DAY)
    data = cli_json(migrated_url, "holds", "expire", "--operator", "cron")
    assert data["holds_voided"] == 1 and len(data["entries"]) == 1
    assert [h["hold_key"] for h in cli_json(migrated_url, "holds", "list")["holds"]] == [
        "hold:fresh"]
    assert cli_json(migrated_url, "balance", "c1")["held"] == 50
    entry = cli_json(migrated_url, "entry", "show", data["entries"][0])
    assert entry["reason"]["operator"] == "cron"

    again = cli(migrated_url, "holds", "expire", "--operator", "cron")
    assert again.exit_code == 0, again.output
    assert "voided 0 timed-out holds" in again.stdout


def seed_expiring(url: str) -> None:
    seed(url,
         Earn("earn:a1", "a", 100, NOW - 10 * DAY),
         Earn("earn:a2", "a", 40, NOW - 3 * DAY),
         Earn("earn:a3", "a", 7, NOW + 30 * DAY),
         Earn("earn:b1", "b", 60, NOW - 5 * DAY),
         now=NOW - 400 * DAY)


def test_expire_dry_run_shows_what_would_expire_per_customer_and_writes_nothing(
        migrated_url: str) -> None:
    """The dry run lists lots and points per customer; balances stay as they were."""
    seed_expiring(migrated_url)
    as_of = (NOW - DAY).date().isoformat()
    data = cli_json(migrated_url, "expire", "--as-of", as_of, "--dry-run")
    assert [(c["customer_id"], c["lots"], c["points"]) for c in data["per_customer"]] == [
        ("a", 2, 140), ("b", 1, 60)]
    assert (data["points"], data["lots"], data["customers"]) == (200, 3, 2)
    human = cli(migrated_url, "expire", "--as-of", as_of, "--dry-run")
    assert human.exit_code == 0, human.output
    assert "200 points in 3 lots of 2 customers; nothing was written" in human.stdout
    assert cli_json(migrated_url, "balance", "a")["available"] == 147


def test_expire_takes_the_due_points_and_is_safe_to_run_again(migrated_url: str) -> None:
    """expire moves what is left of due lots to the expiry account, records the operator,
    and a second run (same or another operator) finds nothing due."""
    seed_expiring(migrated_url)
    as_of = (NOW - DAY).date().isoformat()
    data = cli_json(migrated_url, "expire", "--as-of", as_of, "--operator", "cron")
    assert (data["lots_expired"], data["points"]) == (3, 200)
    assert cli_json(migrated_url, "balance", "a")["available"] == 7
    assert cli_json(migrated_url, "balance", "b")["available"] == 0
    entry = cli_json(migrated_url, "entry", "show", data["entries"][0])
    assert (entry["kind"], entry["amount"], entry["reason"]["operator"]) == ("expire", 200,
                                                                             "cron")
    for operator in ("cron", "alice"):
        again = cli_json(migrated_url, "expire", "--as-of", as_of, "--operator", operator)
        assert (again["lots_expired"], again["entries"]) == (0, [])
    assert cli(migrated_url, "verify").exit_code == 0


def test_expire_refuses_a_future_date_and_a_missing_operator(migrated_url: str) -> None:
    """Expiring ahead of time, or writing without an operator, is a usage error (exit 2)."""
    future = (NOW + 2 * DAY).date().isoformat()
    result = cli(migrated_url, "expire", "--as-of", future, "--operator", "cron")
    assert result.exit_code == 2
    assert "is in the future" in result.stderr
    today = NOW.date().isoformat()
    no_operator = cli(migrated_url, "expire", "--as-of", today)
    assert no_operator.exit_code == 2
    assert "--operator is required" in no_operator.stderr
    bad = cli(migrated_url, "expire", "--as-of", "yesterday", "--dry-run")
    assert bad.exit_code == 2

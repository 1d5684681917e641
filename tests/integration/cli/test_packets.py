"""``packets list|show|void|approve-void|sweep``: operations see packets, their claims and
the refusals around them, and void one only with a second operator."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, text

from points.exchange.tables import known_customers
from points.gifts import desk
from points.gifts.policy import GiftSettings
from points.ledger import Earn
from tests.integration.cli.support import DAY, NOW, cli, cli_json, engine_for, seed


def packet(engine: Engine, *, at: datetime = NOW) -> dict[str, object]:
    with engine.begin() as conn:
        for name in ("sender", "friend"):
            conn.execute(known_customers.insert().values(
                customer_id=name, known_since=NOW - 30 * DAY, evidence="test",
                identity_hash=f"id-{name}", updated_at=NOW))
    seed_url = engine.url.render_as_string(hide_password=False)
    seed(seed_url, Earn("fund-sender", "sender", 1000, NOW + 90 * DAY))
    with engine.begin() as conn:
        row = desk.create_packet(conn, sender_id="sender", packet_id="p_cli", total=100,
                                 shares=4, split_mode="random", message="hi", now=at,
                                 policy=GiftSettings(), expires_in=DAY)
        desk.claim_packet(conn, claimant_id="friend", code=str(row["code"]), now=at)
    return row


def test_list_and_show_a_packet_with_its_claims(migrated_url: str) -> None:
    """list shows the open packet; show names the claimant and the points left."""
    with engine_for(migrated_url) as engine:
        packet(engine)
    listed = cli_json(migrated_url, "packets", "list", "--status", "open")
    assert [(p["packet_id"], p["claimed_count"]) for p in listed] == [("p_cli", 1)]
    shown = cli_json(migrated_url, "packets", "show", "p_cli")
    assert [c["claimant_id"] for c in shown["claims"]] == ["friend"]
    missing = cli(migrated_url, "packets", "show", "p_nope")
    assert missing.exit_code != 0 and "no packet" in missing.stderr


def test_void_needs_a_second_operator_and_returns_the_rest(migrated_url: str) -> None:
    """alice asks (nothing moves), alice cannot approve (refused, exit non-zero), bob
    approves: the packet is voided and the unclaimed points are back in the wallet."""
    with engine_for(migrated_url) as engine:
        packet(engine)
    asked = cli(migrated_url, "packets", "void", "p_cli", "--reason", "reported as spam",
                "--operator", "alice")
    assert asked.exit_code == 0, asked.output
    assert cli_json(migrated_url, "packets", "show", "p_cli")["status"] == "open"
    same = cli(migrated_url, "packets", "approve-void", "p_cli", "--operator", "alice")
    assert same.exit_code != 0 and "same_operator" in same.stderr
    approved = cli_json(migrated_url, "packets", "approve-void", "p_cli", "--operator", "bob")
    assert approved["status"] == "voided"
    claimed = 100 - int(approved["returned"])
    assert int(cli_json(migrated_url, "balance", "sender")["available"]) == 1000 - claimed
    assert cli_json(migrated_url, "verify")["ok"] is True


def test_sweep_expires_due_packets(migrated_url: str) -> None:
    """A packet created two days ago with a one-day expiry is returned by `packets sweep`, once."""
    with engine_for(migrated_url) as engine:
        packet(engine, at=NOW - 2 * DAY)
    assert cli_json(migrated_url, "packets", "sweep")["packets_expired"] == 1
    assert cli_json(migrated_url, "packets", "sweep")["packets_expired"] == 0
    assert cli_json(migrated_url, "packets", "show", "p_cli")["status"] == "expired"


def test_verify_reports_a_tampered_packet_and_exits_1(migrated_url: str) -> None:
    """A packet row whose claimed points were raised behind the ledger's back (5 points more
    than its claims gave out) fails verify: exit 1, the packet named, what it holds against
    what is unclaimed, and the claims against the row, in words; the JSON lists the checks."""
    with engine_for(migrated_url) as engine:
        packet(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE red_packets SET claimed_points = claimed_points + 5"
                              " WHERE packet_id = 'p_cli'"))
    shown = cli_json(migrated_url, "packets", "show", "p_cli")
    total, claimed = int(shown["total"]), int(shown["claimed_points"])
    result = cli(migrated_url, "verify")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: violations_found:")
    assert "packet p_cli" in result.stdout
    held = total - (claimed - 5)
    assert f"open packet holds {held} but {held - 5} are unclaimed" in result.stdout
    assert f"1 claims of {claimed - 5} points recorded, the packet says 1 of {claimed}" in (
        result.stdout)
    data = cli_json(migrated_url, "verify", exit_code=1)
    assert {v["check"] for v in data["violations"]} == {"packet_held_is_unclaimed",
                                                        "packet_claims_sum"}


def test_verify_reports_a_tampered_share_in_the_claims_chain(migrated_url: str) -> None:
    """A claim whose recorded 'left before it' was changed (the packet row and the hold
    untouched) is reported by packet_claims_chain with the share number, exit 1."""
    with engine_for(migrated_url) as engine:
        packet(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE packet_claims SET remaining_before = remaining_before - 1"
                              " WHERE packet_id = 'p_cli' AND share_no = 1"))
    result = cli(migrated_url, "verify")
    assert result.exit_code == 1, result.output
    assert "packet p_cli share 1" in result.stdout
    assert "recorded as left before it; the earlier shares leave 100 of 100" in result.stdout
    data = cli_json(migrated_url, "verify", exit_code=1)
    assert {v["check"] for v in data["violations"]} == {"packet_claims_chain"}

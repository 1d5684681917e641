"""``audit`` names each kind of silent outcome, and ``refusals list`` filters, on SQLite and
PostgreSQL alike (rows seeded directly: the worker-driven audit test is in streams/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from points.dead_letters import dead_letters
from points.earning.tables import earning_records
from points.inbox import inbound_events
from points.refusals import Refusal, record_refusals
from tests.integration.cli.support import cli, cli_json, engine_for

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def inbox(
    event_id: str, event_type: str, customer: str, offset: int, **payload: Any
) -> dict[str, Any]:
    return {"event_id": event_id, "topic": "bank.transactions", "event_type": event_type,
            "customer_id": customer, "kafka_partition": 0, "kafka_offset": offset,
            "payload": {"event_id": event_id, **payload}}


def refusal(
    key: str, customer: str, subject: str, code: str, minutes: int, **extra: Any
) -> Refusal:
    return Refusal(dedupe_key=key, source="earning" if subject == "clawback" else "referrals",
                   subject=subject, reason_code=code, reason=f"{code} for {customer}",
                   at=AT + timedelta(minutes=minutes), customer_id=customer, **extra)


def test_audit_names_a_lost_purchase_an_unanswered_referral_code_and_an_unrelayed_letter(
    migrated_url: str,
) -> None:
    """p-ok (its record) and r-ok (its clawback refused) pass; p-lost (no record, no entry, no
    letter), onb-1 (referral code, no referral, no refusal) and an unrelayed dead letter are
    each named with their check, and the exit code is 1."""
    with engine_for(migrated_url) as engine, engine.begin() as conn:
        conn.execute(insert(inbound_events), [
            inbox("p-ok", "purchase", "ann", 1, amount_minor=1000),
            inbox("r-ok", "refund", "ann", 2, amount_minor=1000, original_event_id="p-ok"),
            inbox("p-lost", "purchase", "ben", 3, amount_minor=1000),
            inbox("onb-1", "customer_onboarded", "cat", 4, referral_code="ABCD2345"),
        ])
        conn.execute(insert(earning_records),
                     [{"event_id": "p-ok", "customer_id": "ann", "record": {"amount_minor": 1000}}])
        record_refusals(conn, [refusal("clawback:r-ok", "ann", "clawback", "too_late", 0,
                                       event_id="r-ok")])
        conn.execute(insert(dead_letters), [{
            "topic": "bank.transactions", "kafka_partition": 0, "kafka_offset": 9,
            "reason_code": "invalid_json", "reason": "not JSON", "message_key": b"x",
            "message_value": b"{"}])
    report = cli_json(migrated_url, "audit", exit_code=1)
    assert report["ok"] is False and report["events"] == 4
    assert sorted((o["check"], o["subject"]) for o in report["offenders"]) == [
        ("dead_letter_not_relayed", "bank.transactions/0/9"),
        ("no_outcome", "onb-1"),
        ("no_outcome", "p-lost"),
        ("referral_without_outcome", "onb-1"),
    ]
    assert "silent outcomes" in cli(migrated_url, "audit").output


def test_refusals_list_filters_by_customer_subject_reason_and_time(migrated_url: str) -> None:
    """Newest first; each filter narrows; --since without a zone is a usage error (exit 2)."""
    with engine_for(migrated_url) as engine, engine.begin() as conn:
        record_refusals(conn, [
            refusal("clawback:r1", "ann", "clawback", "clawback_exceeds_earning", 0),
            refusal("referral:x1", "ann", "referral", "self_referral", 10),
            refusal("referral:x2", "ben", "referral", "referee_exists", 20),
        ])

    def keys(*args: str) -> list[str]:
        listed = cli_json(migrated_url, "refusals", "list", *args)["refusals"]
        return [r["dedupe_key"] for r in listed]

    assert keys() == ["referral:x2", "referral:x1", "clawback:r1"]
    assert keys("--customer", "ann") == ["referral:x1", "clawback:r1"]
    assert keys("--subject", "referral", "--source", "referrals") == ["referral:x2", "referral:x1"]
    assert keys("--reason", "self_referral") == ["referral:x1"]
    since = (AT + timedelta(minutes=5)).isoformat()
    assert keys("--since", since) == ["referral:x2", "referral:x1"]
    assert cli(migrated_url, "refusals", "list", "--since", "2026-12-01T00:00:00").exit_code == 2

"""The published JSON Schemas and AsyncAPI document match the models and are deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from points import contracts_docs
from points.events import any_event_adapter

ROOT = Path(__file__).resolve().parents[2]


def test_committed_contract_docs_are_up_to_date() -> None:
    """docs/schemas/*.schema.json and docs/asyncapi.yaml equal what the models generate.

    If this fails, run `python -m points.contracts_docs` and commit the result.
    """
    assert contracts_docs.stale_files(ROOT) == []
    assert contracts_docs.main(["--check", "--root", str(ROOT)]) == 0


def test_generation_is_deterministic() -> None:
    """Two runs give byte-identical files."""
    assert contracts_docs.generate() == contracts_docs.generate()


def test_check_fails_on_a_stale_or_missing_file_and_writing_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check exits 1 naming the stale file; a plain run rewrites it and --check passes."""
    assert contracts_docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert contracts_docs.main(["--root", str(tmp_path)]) == 0
    assert contracts_docs.main(["--check", "--root", str(tmp_path)]) == 0
    target = tmp_path / "docs" / "schemas" / "bank.transactions.schema.json"
    target.write_text(target.read_text().replace("amount_minor", "amount"))
    capsys.readouterr()
    assert contracts_docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert "stale: docs/schemas/bank.transactions.schema.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("stem", "event_types"),
    [
        ("bank.transactions", {"purchase", "refund", "reversal"}),
        ("bank.customers", {"customer_profile", "customer_onboarded"}),
        ("customer.activity", {"check_in", "share", "challenge_opt_in"}),
        (
            "partner.events",
            {
                "partner_purchase",
                "member_linked",
                "swap_confirmed",
                "swap_rejected",
                "inbound_swap",
                "referral_signup",
            },
        ),
    ],
)
def test_each_topic_schema_is_a_closed_discriminated_union(
    stem: str, event_types: set[str]
) -> None:
    """Each schema offers one closed object per event type, with integer money and points."""
    schema = json.loads((ROOT / "docs" / "schemas" / f"{stem}.schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["discriminator"]["mapping"]) == event_types
    for definition in schema["$defs"].values():
        if "event_type" not in definition.get("properties", {}):
            continue
        assert definition["additionalProperties"] is False
        assert "customer_id" in definition["required"]
        for name, prop in definition["properties"].items():
            if name.endswith("_minor") or name.endswith("points"):
                assert prop["type"] == "integer", name


def test_asyncapi_document_lists_every_message_keyed_by_customer_id() -> None:
    """AsyncAPI 3.0: four channels received, one message per event type; customer.nudges and
    points.ledger (gift and red packet notifications) sent; each message with a Kafka key."""
    doc = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert doc["asyncapi"] == "3.0.0"
    by_action: dict[str, set[str]] = {}
    for operation in doc["operations"].values():
        channel = doc["channels"][operation["channel"]["$ref"].rsplit("/", 1)[1]]
        by_action.setdefault(operation["action"], set()).add(channel["address"])
    assert by_action == {
        "receive": {
            "bank.transactions",
            "bank.customers",
            "customer.activity",
            "partner.{partner_id}.events",
        },
        "send": {"points.ledger", "customer.nudges"},
    }
    names = {message["name"] for message in doc["components"]["messages"].values()}
    all_types = any_event_adapter.json_schema()["discriminator"]["mapping"]
    assert names == set(all_types) | {"gift_notice", "red_packet_notice", "nudge"}
    assert doc["operations"]["sendCustomerNudges"]["action"] == "send"
    for message in doc["components"]["messages"].values():
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        ref = message["payload"]["$ref"].rsplit("/", 1)[1]
        assert ref in doc["components"]["schemas"]


def test_the_gift_notifications_schema_is_closed_and_never_offers_null() -> None:
    """docs/schemas/points.ledger.gifts.schema.json: a gift or a red packet notification,
    closed objects, integer points, optional fields absent rather than null."""
    text = (ROOT / "docs" / "schemas" / "points.ledger.gifts.schema.json").read_text()
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in schema["anyOf"]} == {
        "GiftNotice", "RedPacketNotice"}
    for definition in schema["$defs"].values():
        assert definition["additionalProperties"] is False
    assert schema["$defs"]["GiftNotice"]["properties"]["points"]["type"] == "integer"
    assert '"null"' not in text

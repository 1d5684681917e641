"""Generate the published event contracts from the pydantic models in :mod:`points.events`
(what the exchange consumes) and :mod:`points.gifts.notices` (the gifts' ``points.ledger``
notifications it publishes).

``python -m points.contracts_docs`` writes ``docs/schemas/<topic>.schema.json`` (JSON Schema
2020-12, one per topic or outbound message family) and ``docs/asyncapi.yaml`` (AsyncAPI 3.0:
``receive`` operations for the inbound topics, ``send`` for the outbound); ``--check`` writes
nothing and exits 1 when a file is missing or differs from what the models say. Output is
deterministic: sorted keys, fixed indentation, a trailing newline.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from points import events
from points.gifts import notices
from points.nudges.contract import NudgeMessage, nudge_message_adapter
from points.settings import TopicNames

__all__ = ["TOPICS", "Topic", "generate", "main"]

EXIT_OK = 0
EXIT_STALE = 1
ASYNCAPI_PATH = "docs/asyncapi.yaml"
SCHEMA_DIR = "docs/schemas"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KEY_DESCRIPTION = "customer_id of the message, UTF-8: one customer's events stay in order"


@dataclass(frozen=True)
class Topic:
    channel_id: str
    address: str
    file_stem: str
    producer: str
    description: str
    adapter: TypeAdapter[Any]
    models: tuple[type[BaseModel], ...]
    parameters: tuple[tuple[str, str], ...] = ()
    #: "receive": the exchange consumes the topic; "send": it publishes it
    action: str = "receive"


_names = TopicNames()

TOPICS: tuple[Topic, ...] = (
    Topic(
        channel_id="bankTransactions",
        address=_names.bank_transactions,
        file_stem=_names.bank_transactions,
        producer="core banking",
        description="Card and account payments: purchases, refunds and reversals.",
        adapter=events.bank_transaction_adapter,
        models=(events.Purchase, events.Refund, events.Reversal),
    ),
    Topic(
        channel_id="bankCustomers",
        address=_names.bank_customers,
        file_stem=_names.bank_customers,
        producer="core banking",
        description=(
            "Customer profiles (segment, joined_at, birth_year, status, marketing_consent) and "
            "onboarding with an optional referral code. Compacted: the latest message per "
            "customer_id is kept."
        ),
        adapter=events.bank_customer_adapter,
        models=(events.CustomerProfile, events.CustomerOnboarded),
    ),
    Topic(
        channel_id="customerActivity",
        address=_names.customer_activity,
        file_stem=_names.customer_activity,
        producer="the bank's mobile app",
        description="App check-ins, shares and challenge opt-ins (gamified, social earning).",
        adapter=events.customer_activity_adapter,
        models=(events.CheckIn, events.Share, events.ChallengeOptIn),
    ),
    Topic(
        channel_id="partnerEvents",
        address=_names.partner_events("{partner_id}"),
        file_stem="partner.events",
        producer="each partner, on its own topic",
        description=(
            "What a partner tells us about linked members: purchases, member links, swap "
            "confirmations and rejections, inbound swaps, referral signups. Each message's "
            "partner_id must equal the partner id in the topic name. Messages are HMAC-signed; "
            "the signature travels in the message headers, not in the payload."
        ),
        adapter=events.partner_event_adapter,
        models=(
            events.PartnerPurchase,
            events.MemberLinked,
            events.SwapConfirmed,
            events.SwapRejected,
            events.InboundSwap,
            events.ReferralSignup,
        ),
        parameters=(("partner_id", "The partner program's id, e.g. ridehail, eshop, airline."),),
    ),
    Topic(
        channel_id="customerNudges",
        address=_names.customer_nudges,
        file_stem=_names.customer_nudges,
        producer="the exchange (through its outbox), for the bank's push service",
        description=(
            "Nudges to push to customers now (rule file's nudges: milestone near, first "
            "partner purchase, streak at risk, points expiring, lifecycle at risk), after "
            "consent, quiet hours and frequency caps. At most one message per nudge_id; the "
            "dedupe_key header is nudge:<nudge_id>."
        ),
        adapter=nudge_message_adapter,
        models=(NudgeMessage,),
        action="send",
    ),
    Topic(
        channel_id="pointsLedger",
        address=_names.points_ledger,
        file_stem=f"{_names.points_ledger}.gifts",
        producer="the exchange (its outbox relay)",
        description=(
            "What was posted, for the bank's apps and analytics. Documented here: the "
            "notifications of gifts and red packets (docs/gifts.md, \"Notifications\"): one "
            "to each customer concerned, written in the same transaction as the ledger entries "
            "and published once by the outbox relay; a consumer deduplicates on entry_key and "
            "customer_id. The earning pipeline's journal notifications on this topic are "
            "described in docs/architecture.md."
        ),
        adapter=notices.gift_notice_adapter,
        models=(notices.GiftNotice, notices.RedPacketNotice),
        action="send",
    ),
)


def _event_type(model: type[BaseModel]) -> str:
    """The message's name: its event_type (inbound), or its ``message_name`` (outbound
    notifications, which carry no discriminator field)."""
    if "event_type" not in model.model_fields:
        return str(model.message_name)  # type: ignore[attr-defined]
    (value,) = get_args(model.model_fields["event_type"].annotation)
    return str(value)


def _doc(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "").strip()


def topic_schema(topic: Topic) -> dict[str, Any]:
    """The JSON Schema of one topic: a oneOf over its event types, keyed by event_type."""
    schema = topic.adapter.json_schema(mode="validation")
    schema["$schema"] = JSON_SCHEMA_DIALECT
    schema["title"] = topic.address
    schema["description"] = (
        f"{topic.description} Produced by {topic.producer}. Kafka key: {KEY_DESCRIPTION}."
    )
    return schema


def asyncapi_document() -> dict[str, Any]:
    """An AsyncAPI 3.0 document: the topics the exchange receives, and the notifications it
    sends."""
    all_models = [model for topic in TOPICS for model in topic.models]
    _, definitions = models_json_schema(
        [(model, "validation") for model in all_models],
        ref_template="#/components/schemas/{model}",
    )
    schemas = definitions.get("$defs", {})
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in TOPICS:
        channel_messages: dict[str, Any] = {}
        for model in topic.models:
            name = model.__name__
            event_type = _event_type(model)
            messages[name] = {
                "name": event_type,
                "title": name,
                "summary": _doc(model).splitlines()[0] if _doc(model) else name,
                "contentType": "application/json",
                "payload": {"$ref": f"#/components/schemas/{name}"},
                "bindings": {
                    "kafka": {
                        "bindingVersion": "0.5.0",
                        "key": {"type": "string", "description": KEY_DESCRIPTION},
                    }
                },
            }
            channel_messages[event_type] = {"$ref": f"#/components/messages/{name}"}
        channel: dict[str, Any] = {
            "address": topic.address,
            "description": f"{topic.description} Produced by {topic.producer}.",
            "messages": channel_messages,
        }
        if topic.parameters:
            channel["parameters"] = {name: {"description": text} for name, text in topic.parameters}
        channels[topic.channel_id] = channel
        verb = "consumes" if topic.action == "receive" else "publishes"
        operations[f"{topic.action}{topic.channel_id[0].upper()}{topic.channel_id[1:]}"] = {
            "action": topic.action,
            "channel": {"$ref": f"#/channels/{topic.channel_id}"},
            "summary": f"The exchange {verb} {topic.address}.",
            "messages": [
                {"$ref": f"#/channels/{topic.channel_id}/messages/{event_type}"}
                for event_type in channel_messages
            ],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Points Exchange event contracts",
            "version": str(events.SCHEMA_VERSION),
            "description": (
                "Kafka topics the points exchange consumes, and those it publishes: "
                "customer.nudges for the bank's push service and the points.ledger "
                "notifications of gifts and red packets. Every consumed message is JSON, "
                "carries schema_version and an event_type discriminator, rejects unknown "
                "fields, uses integer minor units for money and integer points, and times "
                "with a zone. Generated from points/events.py, points/nudges/contract.py and "
                "points/gifts/notices.py by `python -m points.contracts_docs`; do not edit "
                "by hand."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml_text(data: Any) -> str:
    header = ("# Generated by `python -m points.contracts_docs` from points/events.py and "
              "points/gifts/notices.py.\n")
    body = yaml.safe_dump(
        data, sort_keys=True, allow_unicode=True, default_flow_style=False, width=100
    )
    return header + body


def generate() -> dict[str, str]:
    """Every generated file: path relative to the repository root -> its exact text."""
    files = {
        f"{SCHEMA_DIR}/{topic.file_stem}.schema.json": _json_text(topic_schema(topic))
        for topic in TOPICS
    }
    files[ASYNCAPI_PATH] = _yaml_text(asyncapi_document())
    return files


def stale_files(root: Path) -> list[str]:
    """Generated files that are missing under ``root`` or differ from the models."""
    stale = []
    for relative, text in sorted(generate().items()):
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(relative)
    return stale


def write(root: Path) -> list[str]:
    """Write every generated file under ``root``; return the ones that changed."""
    changed = stale_files(root)
    for relative, text in generate().items():
        if relative in changed:
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m points.contracts_docs",
        description="Write (or --check) docs/schemas/*.schema.json and docs/asyncapi.yaml.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parents[1], help="repository root"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.root)
        for relative in stale:
            print(f"stale: {relative} (run `python -m points.contracts_docs`)", file=sys.stderr)
        return EXIT_STALE if stale else EXIT_OK
    for relative in write(args.root):
        print(f"wrote {relative}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

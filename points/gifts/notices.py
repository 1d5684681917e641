"""The ``points.ledger`` notifications of gifts and red packets, as wire contracts (v1).

The gifts desk builds every notification through :data:`gift_notice_adapter` before it goes to
the outbox, so a message that does not fit these models never leaves; the same models generate
``docs/schemas/points.ledger.gifts.schema.json`` and the ``pointsLedger`` channel of
``docs/asyncapi.yaml`` (``python -m points.contracts_docs``), so the published contract and
the code cannot drift apart. docs/gifts.md ("Notifications") says when each is sent.

The two messages differ by the object they carry (``gift`` or ``red_packet``); neither ever
carries a packet's claim code (its bearer secret). Optional fields are absent, never null
(``SkipJsonSchema``: the schema does not offer null either).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Connection

from points.outbox import enqueue

__all__ = [
    "GiftDetail",
    "GiftNotice",
    "PacketDetail",
    "RedPacketNotice",
    "gift_notice_adapter",
    "notice",
    "notice_json",
    "queue_notices",
]

Absent = SkipJsonSchema[None]
"""An optional field: left out of the message when it does not apply, never sent as null."""

LotLine = Annotated[
    tuple[int, int, str],
    Field(description="[source lot id, points, expires_at (ISO 8601)]: a credited lot keeps "
                      "the expiry of the sender's lot it came from"),
]


class _Closed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GiftDetail(_Closed):
    """The gift a notification is about, seen from the customer it is sent to."""

    gift_id: str = Field(max_length=64)
    role: Literal["sender", "recipient"]
    counterparty_id: str = Field(max_length=64, description="The other customer of the gift.")
    status: Literal["pending", "accepted"]
    message: str = Field(max_length=280, description="The sender's message.")
    lots: list[LotLine] | Absent = Field(
        default=None, description="The recipient's credited lots (accepted gifts, recipient).")


class PacketDetail(_Closed):
    """The red packet a notification is about, seen from the customer it is sent to."""

    packet_id: str = Field(max_length=64)
    role: Literal["sender", "claimant"]
    shares: int | Absent = Field(default=None, ge=1, description="At creation: the shares.")
    split: Literal["equal", "random"] | Absent = Field(default=None,
                                                     description="At creation: the split.")
    share_no: int | Absent = Field(default=None, ge=1, description="At a claim: which share.")
    sender_id: str | Absent = Field(default=None, max_length=64,
                                  description="At a claim: who sent the packet.")
    claimant_id: str | Absent = Field(default=None, max_length=64,
                                    description="At a claim, to the sender: who claimed.")
    share_points: int | Absent = Field(default=None, ge=1,
                                     description="At a claim, to the sender: the share.")
    lots: list[LotLine] | Absent = Field(
        default=None, description="At a claim, to the claimant: the credited lots.")


class _Notice(_Closed):
    entry_key: str = Field(max_length=128, description="The ledger entry's idempotency key.")
    kind: Literal["hold", "post", "earn"] = Field(
        description="hold: points held from the sender; post: a hold posted (the sender's "
                    "available points do not change); earn: points credited.")
    customer_id: str = Field(max_length=64, description="Who is told; also the Kafka key.")
    points: int = Field(description="Change of this customer's available points.")
    source_event: str = Field(max_length=64, description="The gift id or the packet id.")


class GiftNotice(_Notice):
    """A gift was sent (to the sender, ``hold``) or accepted (sender ``post``, recipient
    ``earn``)."""

    message_name: ClassVar[str] = "gift_notice"
    gift: GiftDetail


class RedPacketNotice(_Notice):
    """A red packet was created (to the sender, ``hold``) or a share claimed (sender ``post``,
    claimant ``earn``)."""

    message_name: ClassVar[str] = "red_packet_notice"
    red_packet: PacketDetail


gift_notice_adapter: Final[TypeAdapter[GiftNotice | RedPacketNotice]] = TypeAdapter(
    GiftNotice | RedPacketNotice)


def notice_json(note: dict[str, Any]) -> bytes:
    """``note`` checked against the contract and encoded (compact, absent fields left out)."""
    return gift_notice_adapter.dump_json(gift_notice_adapter.validate_python(note),
                                         exclude_none=True)


def notice(entry_key: str, kind: str, customer_id: str, points: int, source: str,
           **about: Any) -> dict[str, Any]:
    """A notification's fields; ``about`` is ``gift=...`` or ``red_packet=...``."""
    return {"entry_key": entry_key, "kind": kind, "customer_id": customer_id, "points": points,
            "source_event": source, **about}


def queue_notices(conn: Connection, topic: str | None, notes: list[dict[str, Any]]) -> None:
    """Queue ``points.ledger`` messages (docs/gifts.md "Notifications") in the caller's
    transaction, each checked against the contract above on the way; whichever worker's
    outbox relay holds the lease publishes them. A retried request queues nothing twice (the
    dedupe key is the entry's key and the customer)."""
    if topic is None or not notes:
        return
    enqueue(conn, [{
        "topic": topic, "message_key": note["customer_id"].encode(),
        "message_value": notice_json(note),
        "headers": {"content-type": "application/json"},
        "dedupe_key": f"ledger:{note['entry_key']}:{note['customer_id']}"[:200],
    } for note in notes])

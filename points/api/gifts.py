"""Gifts and red packets for the bank app (docs/gifts.md, docs/api.md "Gifts and red packets").

Every POST names its gift or packet with the ``Idempotency-Key`` (the id is derived from the
customer and the key), so a retried request finds what the first one made instead of making
it twice. A refusal is recorded in ``refusals`` (the customer's ``GET /v1/me/refusals``,
operations' ``points-ledger refusals list``) and answered as a problem, code ``gift_refused``,
whose ``detail`` starts with the reason code.
"""

# No ``from __future__ import annotations``: FastAPI must see the Annotated dependencies.

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, or_, select

from points.api import idempotency
from points.api.errors import NotFound
from points.gifts import desk, fission, funnel, split
from points.gifts.policy import GiftSettings
from points.gifts.tables import gifts, packet_claims, red_packets

__all__ = ["gifts_router"]

T = TypeVar("T")


class GiftRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    points: int = Field(ge=1, le=10**12)
    message: str = Field(default="", max_length=280)
    recipient_referral_code: str | None = Field(default=None, min_length=1, max_length=16)
    recipient_contact_hash: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_recipient(self) -> "GiftRequest":
        if (self.recipient_referral_code is None) == (self.recipient_contact_hash is None):
            raise ValueError("name the recipient by exactly one of recipient_referral_code "
                             "and recipient_contact_hash")
        return self


class Gift(BaseModel):
    model_config = ConfigDict(frozen=True)

    gift_id: str
    direction: Literal["sent", "received"]
    counterparty_id: str
    points: int
    message: str
    status: str = Field(description="pending (held, waiting for acceptance), accepted, "
                                    "returned (not accepted in time)")
    accept_by: datetime
    created_at: datetime
    lots: list[list[Any]] | None = Field(
        description="[source lot, points, expires_at] the recipient's lots came from: a gift "
                    "keeps its original expiry")


class GiftList(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[Gift]


class PacketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    total: int = Field(ge=1, le=10**12)
    shares: int = Field(ge=1, le=10_000)
    split: Literal["equal", "random"] = "random"
    message: str = Field(default="", max_length=280)
    expires_in_s: int | None = Field(default=None, ge=1, le=7 * 86_400,
                                     description="Default 24 h (POINTS_GIFTS__...).")


class PacketClaim(BaseModel):
    model_config = ConfigDict(frozen=True)

    share_no: int
    claimant_id: str
    points: int
    claimed_at: datetime


class Packet(BaseModel):
    model_config = ConfigDict(frozen=True)

    packet_id: str
    code: str = Field(description="The shareable claim code")
    sender_id: str
    total: int
    shares: int
    split: str
    message: str
    status: str = Field(description="open, claimed (every share), expired, voided")
    claimed_count: int
    claimed_points: int
    expires_at: datetime
    created_at: datetime
    claims: list[PacketClaim] | None = Field(
        default=None, description="Who claimed what (the sender's view only)")


class PacketOpened(BaseModel):
    """What anyone with the code sees before claiming."""

    model_config = ConfigDict(frozen=True)

    code: str
    sender_id: str
    message: str
    shares: int
    shares_left: int
    status: str
    expires_at: datetime


class PacketList(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[Packet]


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    contact_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description=(
        "The identity hash core banking will send when this person opens an account"))


class Reservation(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    reserved_until: datetime = Field(description="Open an account with the code before this "
                                                 "time to receive the share")


class ClaimList(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[PacketClaim]


def _gift_body(row: Any, customer_id: str) -> Gift:
    sent = row["sender_id"] == customer_id
    return Gift(
        gift_id=row["gift_id"], direction="sent" if sent else "received",
        counterparty_id=row["recipient_id"] if sent else row["sender_id"],
        points=int(row["points"]), message=row["message"], status=row["status"],
        accept_by=desk.utc(row["accept_by"]), created_at=desk.utc(row["created_at"]),
        lots=row["lineage"])


def _claims(conn: Connection, packet_id: str) -> list[PacketClaim]:
    rows = conn.execute(select(packet_claims).where(packet_claims.c.packet_id == packet_id)
                        .order_by(packet_claims.c.share_no)).mappings()
    return [PacketClaim(share_no=r["share_no"], claimant_id=r["claimant_id"],
                        points=int(r["points"]), claimed_at=desk.utc(r["claimed_at"]))
            for r in rows]


def _packet_body(row: dict[str, Any], claims: list[PacketClaim] | None = None) -> Packet:
    return Packet(
        packet_id=row["packet_id"], code=row["code"], sender_id=row["sender_id"],
        total=int(row["total"]), shares=int(row["shares"]), split=row["split"],
        message=row["message"], status=row["status"], claimed_count=int(row["claimed_count"]),
        claimed_points=int(row["claimed_points"]), expires_at=row["expires_at"],
        created_at=row["created_at"], claims=claims)


def gifts_router(customer: Callable[..., Any], policy: GiftSettings,
                 problems: dict[int | str, dict[str, Any]], ledger_topic: str) -> APIRouter:
    """The routes, given the API's customer dependency, the gift limits and the topic the
    gift and claim notifications go to (through the outbox)."""
    router = APIRouter(tags=["gifts"])
    Customer = Annotated[str, Depends(customer)]
    Key = Annotated[str, Header(alias="Idempotency-Key", pattern=idempotency.KEY_PATTERN,
                                description="Names the gift or packet: a retry with the same "
                                            "key returns it instead of sending again.")]
    Code = Annotated[str, PathParam(min_length=6, max_length=24, pattern=r"^[A-Za-z0-9 -]+$")]
    Id = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

    async def refusable(request: Request, customer_id: str | None,
                        fn: Callable[[Connection], T]) -> T:
        ctx = request.app.state.ctx
        try:
            result: T = await ctx.write(fn)
        except desk.GiftRefused as error:
            refused, now = error, ctx.clock()
            await ctx.write(lambda c: desk.record_refusal(c, refused, customer_id, now))
            raise
        return result

    async def read_gift(request: Request, gift_id: str, customer_id: str) -> Gift:
        """The gift as ``customer_id`` sees it, read after the write that made or moved it."""
        body: Gift = await request.app.state.ctx.read(lambda c: _gift_body(
            c.execute(select(gifts).where(gifts.c.gift_id == gift_id)).mappings().one(),
            customer_id))
        return body

    @router.post("/v1/me/gifts", response_model=Gift, status_code=201, responses=problems,
                 summary="Send points to another customer (held until they accept)")
    async def post_gift(request: Request, payload: GiftRequest, customer_id: Customer,
                        key: Key) -> Gift:
        now = request.app.state.ctx.clock()
        gift_id = desk.gift_id_for(customer_id, key)
        view = await refusable(request, customer_id, lambda c: desk.send_gift(
            c, sender_id=customer_id, gift_id=gift_id, points=payload.points,
            message=payload.message, now=now, policy=policy,
            referral_code=payload.recipient_referral_code,
            contact_hash=payload.recipient_contact_hash, ledger_topic=ledger_topic))
        if view.sender_id != customer_id:
            raise NotFound("no such resource")
        return await read_gift(request, gift_id, customer_id)

    @router.post("/v1/me/gifts/{gift_id}/accept", response_model=Gift, responses=problems,
                 summary="Accept a gift: the points arrive with their original expiry")
    async def post_accept(request: Request, gift_id: Id, customer_id: Customer,
                          _key: Key) -> Gift:
        now = request.app.state.ctx.clock()
        await refusable(request, customer_id, lambda c: desk.accept_gift(
            c, recipient_id=customer_id, gift_id=gift_id, now=now, ledger_topic=ledger_topic))
        return await read_gift(request, gift_id, customer_id)

    @router.get("/v1/me/gifts", response_model=GiftList, responses=problems,
                summary="Gifts sent and received, newest first")
    async def get_gifts(
        request: Request, customer_id: Customer,
        direction: Annotated[Literal["sent", "received", "all"], Query()] = "all",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> GiftList:
        wanted = {"sent": gifts.c.sender_id == customer_id,
                  "received": gifts.c.recipient_id == customer_id,
                  "all": or_(gifts.c.sender_id == customer_id,
                             gifts.c.recipient_id == customer_id)}[direction]

        def read(conn: Connection) -> GiftList:
            rows = conn.execute(select(gifts).where(wanted)
                                .order_by(gifts.c.created_at.desc()).limit(limit)).mappings()
            return GiftList(items=[_gift_body(r, customer_id) for r in rows])

        result: GiftList = await request.app.state.ctx.read(read)
        return result

    @router.post("/v1/me/packets", response_model=Packet, status_code=201, responses=problems,
                 summary="Create a red packet: the whole total is held; share the code")
    async def post_packet(request: Request, body: PacketRequest, customer_id: Customer,
                          key: Key) -> Packet:
        now = request.app.state.ctx.clock()
        packet_id = desk.packet_id_for(customer_id, key)
        expires_in = (timedelta(seconds=body.expires_in_s) if body.expires_in_s is not None
                      else None)
        row = await refusable(request, customer_id, lambda c: desk.create_packet(
            c, sender_id=customer_id, packet_id=packet_id, total=body.total,
            shares=body.shares, split_mode=body.split, message=body.message, now=now,
            policy=policy, expires_in=expires_in, ledger_topic=ledger_topic))
        return _packet_body(row, [])

    @router.get("/v1/me/packets", response_model=PacketList, responses=problems,
                summary="The packets you sent, newest first")
    async def get_packets(request: Request, customer_id: Customer,
                          limit: Annotated[int, Query(ge=1, le=200)] = 50) -> PacketList:
        def read(conn: Connection) -> PacketList:
            ids = conn.execute(select(red_packets.c.packet_id)
                               .where(red_packets.c.sender_id == customer_id)
                               .order_by(red_packets.c.created_at.desc()).limit(limit)).scalars()
            items = []
            for packet_id in ids:
                row = desk.packet_row(conn, packet_id=packet_id)
                assert row is not None
                items.append(_packet_body(row))
            return PacketList(items=items)

        result: PacketList = await request.app.state.ctx.read(read)
        return result

    @router.get("/v1/me/packets/{packet_id}", response_model=Packet, responses=problems,
                summary="One of your packets: status and who claimed what")
    async def get_packet(request: Request, packet_id: Id, customer_id: Customer) -> Packet:
        def read(conn: Connection) -> Packet:
            row = desk.packet_row(conn, packet_id=packet_id)
            if row is None or row["sender_id"] != customer_id:
                raise NotFound("no such resource")
            return _packet_body(row, _claims(conn, packet_id))

        result: Packet = await request.app.state.ctx.read(read)
        return result

    @router.get("/v1/me/packet-claims", response_model=ClaimList, responses=problems,
                summary="The packet shares you claimed, newest first")
    async def get_my_claims(request: Request, customer_id: Customer,
                            limit: Annotated[int, Query(ge=1, le=200)] = 50) -> ClaimList:
        def read(conn: Connection) -> ClaimList:
            rows = conn.execute(select(packet_claims)
                                .where(packet_claims.c.claimant_id == customer_id)
                                .order_by(packet_claims.c.claimed_at.desc())
                                .limit(limit)).mappings()
            return ClaimList(items=[PacketClaim(
                share_no=r["share_no"], claimant_id=r["claimant_id"], points=int(r["points"]),
                claimed_at=desk.utc(r["claimed_at"])) for r in rows])

        result: ClaimList = await request.app.state.ctx.read(read)
        return result

    @router.get("/v1/packets/{code}", response_model=PacketOpened, responses=problems,
                summary="Open a packet by its code: who sent it, the message, shares left")
    async def open_packet(request: Request, code: Code, customer_id: Customer
                          ) -> PacketOpened:
        now = request.app.state.ctx.clock()

        def read(conn: Connection) -> PacketOpened:
            row = desk.packet_row(conn, code=code)
            if row is None:
                raise NotFound("no such resource")
            # The fission funnel's "opened" (points/gifts/funnel.py): once per person.
            funnel.record_open(conn, packet_id=row["packet_id"],
                               opener=desk.identity_of(conn, customer_id), now=now)
            return PacketOpened(code=row["code"], sender_id=row["sender_id"],
                                message=row["message"], shares=int(row["shares"]),
                                shares_left=int(row["shares"]) - int(row["claimed_count"]),
                                status=row["status"], expires_at=row["expires_at"])

        result: PacketOpened = await request.app.state.ctx.write(read)
        return result

    @router.post("/v1/packets/{code}/claim", response_model=PacketClaim, responses=problems,
                 summary="Claim a share: drawn now, posted to you at once")
    async def claim(request: Request, code: Code, customer_id: Customer,
                    _key: Key) -> PacketClaim:
        now = request.app.state.ctx.clock()
        row = await refusable(request, customer_id, lambda c: desk.claim_packet(
            c, claimant_id=customer_id, code=code, now=now, ledger_topic=ledger_topic))
        return PacketClaim(share_no=row["share_no"], claimant_id=row["claimant_id"],
                           points=int(row["points"]), claimed_at=desk.utc(row["claimed_at"]))

    @router.post("/public/packets/{code}/reservations", response_model=Reservation,
                 status_code=201, responses={k: v for k, v in problems.items() if k != 401},
                 summary="A non-customer keeps a share until they open an account with the code")
    async def reserve(request: Request, code: Code, body: ReservationRequest) -> Reservation:
        ctx = request.app.state.ctx
        now = ctx.clock()
        row = await refusable(request, None, lambda c: fission.reserve_share(
            c, code=code, contact_hash=body.contact_hash, now=now, policy=policy))
        return Reservation(code=split.normalise_claim_code(code),
                           reserved_until=desk.utc(row["reserved_until"]))

    return router

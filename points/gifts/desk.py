"""Gifts and red packets on the ledger: send, accept, create, claim, void, sweep.

No new ledger operation: every point moves through the ledger's own two-phase holds and lots.

- A **gift** is a ``Hold`` of the sender's points towards the gifts clearing account
  (:data:`GIFT_CLEARING`). On acceptance (or at once with ``delivery = immediate``) the hold is
  posted and, in the same transaction, the recipient gets one ``Earn`` *from that clearing
  account* per sender lot the points came from, with that lot's expiry (lineage: the gift
  keeps its original expiry). The clearing account is credited and debited by the same amount
  in one transaction, so it stays at zero: a gift is never a bank expense, and ``verify``
  checks that it is zero.
- A **red packet** holds its whole total at creation. A claim, in one transaction, posts the
  claimed share from the current hold, holds what remains again under the next key (the
  remainder never becomes spendable in between), and credits the claimant's lots as for a
  gift. Expiry or an operator's void voids the last hold: the unclaimed points return.

Every refusal raises :class:`GiftRefused` with a stable reason code; :func:`record_refusal`
writes it to ``refusals`` (source ``gifts``) for the customer (``GET /v1/me/refusals``) and
operations (``points-ledger refusals list``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, func, select, update

from points.errors import LedgerInvariantViolated, RequestRejected
from points.exchange.tables import known_customers, referral_codes
from points.gifts import split
from points.gifts.funnel import record_open
from points.gifts.notices import notice, queue_notices
from points.gifts.policy import GiftSettings
from points.gifts.tables import gifts, packet_claims, packet_reservations, red_packets
from points.ledger import (
    BANK,
    AlreadyApplied,
    Applied,
    Earn,
    Hold,
    Operation,
    PostHold,
    Reason,
    Rejected,
    VoidHold,
    apply_batch,
)
from points.refusals import Refusal, record_refusals

__all__ = [
    "GIFT_CLEARING",
    "GiftRefused",
    "accept_gift",
    "claim_packet",
    "create_packet",
    "gift_id_for",
    "identity_of",
    "packet_id_for",
    "record_refusal",
    "request_void",
    "send_gift",
    "sweep",
    "utc",
    "void_packet",
]

GIFT_CLEARING: Final = "p2p-gifts"
"""The clearing account (``bank/p2p-gifts/clearing``) gifts pass through; always zero."""
HOLD_GRACE: Final = timedelta(hours=1)
"""A packet's hold outlives its expiry by this much, so the gifts sweep (not the generic hold
timeout) returns it; if the generic sweep gets there first the points return all the same."""

REFUSAL_TEXT: Final[dict[str, str]] = {
    "unknown_recipient": "No customer has that referral code or contact.",
    "gift_to_oneself": "You cannot send points to yourself.",
    "account_too_new": "Your account is too new to send points yet.",
    "unknown_sender": "The bank does not know your account yet.",
    "daily_cap": "That would pass your daily limit for gifts and packets.",
    "monthly_cap": "That would pass your monthly limit for gifts and packets.",
    "insufficient_points": "You do not have enough points available.",
    "invalid_packet": "A packet needs at least one point for every share.",
    "too_many_shares": "That packet has more shares than allowed.",
    "amount_too_large": "That is more points than one gift or packet may carry.",
    "unknown_packet": "No packet has that code.",
    "packet_expired": "This packet has expired.",
    "packet_closed": "This packet is no longer open.",
    "packet_empty": "Every share of this packet has been claimed.",
    "already_claimed": "You have already claimed a share of this packet.",
    "own_packet": "You cannot claim your own packet.",
    "unknown_gift": "No such gift for you.",
    "void_already_requested": "A void of this packet already waits for approval.",
    "void_not_requested": "No operator asked to void this packet.",
    "same_operator": "The operator who asked for the void cannot approve it.",
    "already_a_customer": "You are already a customer.",
    "shares_reserved": "The shares left are kept for friends who are opening an account.",
    "already_reserved": "A share of this packet is already kept for you.",
    "gift_not_pending": "This gift is no longer waiting to be accepted.",
}


class GiftRefused(RequestRejected):
    """A gift or packet request the rules decline; ``reason_code`` says which rule."""

    code = "gift_refused"

    def __init__(self, reason_code: str, detail: str, *, subject: str,
                 subject_id: str | None) -> None:
        self.reason_code = reason_code
        self.subject = subject
        self.subject_id = subject_id
        super().__init__(f"{reason_code}: {REFUSAL_TEXT.get(reason_code, '')} {detail}".strip())


def record_refusal(conn: Connection, error: GiftRefused, customer_id: str | None,
                   now: datetime) -> None:
    """Record the refusal (its own transaction: the refused one was rolled back)."""
    key = f"gifts:{error.subject}:{error.subject_id}:{customer_id}:{error.reason_code}"
    record_refusals(conn, [Refusal(
        dedupe_key=key[:200], source="gifts", subject=error.subject,
        reason_code=error.reason_code, reason=str(error), at=now,
        subject_id=error.subject_id, customer_id=customer_id)])


def _stable_id(prefix: str, customer_id: str, request_key: str) -> str:
    digest = hashlib.sha256(f"{customer_id}\x00{request_key}".encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


def gift_id_for(sender_id: str, request_key: str) -> str:
    """The gift id a sender's request key names: a retried request finds its gift."""
    return _stable_id("g", sender_id, request_key)


def packet_id_for(sender_id: str, request_key: str) -> str:
    return _stable_id("p", sender_id, request_key)


# --------------------------------------------------------------------------- who is who


def _identity(conn: Connection, customer_id: str) -> tuple[str, datetime | None]:
    """(identity hash or the id itself, known since) of a customer."""
    row = conn.execute(
        select(known_customers.c.identity_hash, known_customers.c.known_since)
        .where(known_customers.c.customer_id == customer_id)
    ).first()
    if row is None:
        return customer_id, None
    return (row[0] or customer_id), row[1]


def identity_of(conn: Connection, customer_id: str) -> str:
    """The customer's identity hash, or their id when the bank sent none."""
    return _identity(conn, customer_id)[0]


def resolve_recipient(conn: Connection, *, referral_code: str | None,
                      contact_hash: str | None) -> str | None:
    """The customer a referral code or a contact (identity) hash names, if any."""
    if referral_code:
        owner = conn.execute(
            select(referral_codes.c.owner_id).where(
                referral_codes.c.code == referral_code.strip().upper(),
                referral_codes.c.owner_kind == "customer")
        ).scalar()
        return None if owner is None else str(owner)
    if contact_hash:
        owner = conn.execute(
            select(known_customers.c.customer_id)
            .where(known_customers.c.identity_hash == contact_hash)
            .order_by(known_customers.c.known_since).limit(1)
        ).scalar()
        return None if owner is None else str(owner)
    return None


def _check_sender(conn: Connection, sender_id: str, points: int, now: datetime,
                  policy: GiftSettings, subject: str, subject_id: str) -> str:
    """The sender's identity, after the account age, amount and cap guards."""

    def refuse(code: str, detail: str = "") -> GiftRefused:
        return GiftRefused(code, detail, subject=subject, subject_id=subject_id)

    if points > policy.amount_max:
        raise refuse("amount_too_large", f"({points} > {policy.amount_max})")
    identity, since = _identity(conn, sender_id)
    if since is None:
        raise refuse("unknown_sender")
    if since.tzinfo is None:
        since = since.replace(tzinfo=now.tzinfo)
    if now - since < timedelta(days=policy.min_account_age_days):
        raise refuse("account_too_new", f"(minimum {policy.min_account_age_days} days)")
    for window, points_max, sends_max, code in (
        (timedelta(days=1), policy.daily_points_max, policy.daily_sends_max, "daily_cap"),
        (timedelta(days=30), policy.monthly_points_max, policy.monthly_sends_max, "monthly_cap"),
    ):
        since_at = now - window
        sent = conn.execute(
            select(func.count(), func.coalesce(func.sum(gifts.c.points), 0))
            .where(gifts.c.sender_id == sender_id, gifts.c.created_at > since_at,
                   gifts.c.status != "returned")
        ).one()
        packed = conn.execute(
            select(func.count(), func.coalesce(func.sum(red_packets.c.total), 0))
            .where(red_packets.c.sender_id == sender_id, red_packets.c.created_at > since_at)
        ).one()
        count, total = int(sent[0]) + int(packed[0]), int(sent[1]) + int(packed[1])
        if count + 1 > sends_max or total + points > points_max:
            raise refuse(code, f"({total} points in {count} sends so far; limits "
                               f"{points_max} points, {sends_max} sends)")
    return identity


# ------------------------------------------------------------------------- ledger moves


def _source_lots(conn: Connection, hold_key: str, points: int) -> list[list[Any]]:
    """The sender lots the first ``points`` of a hold came from, soonest expiry first:
    ``[[lot_id, points, expires_at iso], ...]`` (a post takes the front of the hold's plan)."""
    rows = conn.exec_driver_sql(
        "SELECT m.lot_id, -m.delta, l.expires_at FROM ledger_lot_moves m"
        " JOIN ledger_entries e ON e.id = m.entry_id"
        " JOIN ledger_lots l ON l.entry_id = m.lot_id"
        f" WHERE e.idempotency_key = {_param(conn)} AND m.delta < 0"
        " ORDER BY l.expires_at, l.entry_id", (hold_key,)
    ).all()
    out: list[list[Any]] = []
    need = points
    for lot_id, taken, expires_at in rows:
        if need == 0:
            break
        n = min(int(taken), need)
        when = utc(expires_at)
        out.append([int(lot_id), n, when.isoformat()])
        need -= n
    if need:
        raise LedgerInvariantViolated(f"hold {hold_key!r} took fewer than {points} points")
    return out


def utc(value: object) -> datetime:
    """A stored time as an aware datetime (SQLite gives naive UTC times, or text)."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _param(conn: Connection) -> str:
    return "%s" if conn.dialect.name == "postgresql" else "?"


def _credits(prefix: str, recipient: str, lineage: list[list[Any]], reason: Reason,
             ) -> list[Operation]:
    """One earning per source lot, from the gifts clearing account, with the lot's expiry."""
    ops: list[Operation] = []
    for i, (_lot, points, expires_iso) in enumerate(lineage):
        when = datetime.fromisoformat(expires_iso)
        ops.append(Earn(f"{prefix}:lot{i}", recipient, points, when, program=BANK,
                        from_partner=GIFT_CLEARING, reason=reason))
    return ops


def _apply(conn: Connection, ops: list[Operation], now: datetime) -> None:
    """Apply ops that the desk has checked; only ``insufficient_points`` is an outcome."""
    for result in apply_batch(conn, ops, now=now):
        if isinstance(result, Rejected):
            raise result.error
        assert isinstance(result, Applied | AlreadyApplied)


# -------------------------------------------------------------------------------- gifts


@dataclass(frozen=True, slots=True)
class GiftView:
    gift_id: str
    sender_id: str
    recipient_id: str
    points: int
    message: str
    status: str
    accept_by: datetime
    created_at: datetime
    lineage: list[list[Any]] | None


def _gift(conn: Connection, gift_id: str) -> GiftView | None:
    row = conn.execute(select(gifts).where(gifts.c.gift_id == gift_id)).mappings().first()
    if row is None:
        return None
    return GiftView(row["gift_id"], row["sender_id"], row["recipient_id"], int(row["points"]),
                    row["message"], row["status"], utc(row["accept_by"]),
                    utc(row["created_at"]),
                    row["lineage"])


def send_gift(conn: Connection, *, sender_id: str, gift_id: str, points: int, message: str,
              now: datetime, policy: GiftSettings, referral_code: str | None = None,
              contact_hash: str | None = None, ledger_topic: str | None = None) -> GiftView:
    """Hold the sender's points for the recipient (or deliver them at once, by policy)."""
    existing = _gift(conn, gift_id)
    if existing is not None:
        return existing  # a retried request
    recipient = resolve_recipient(conn, referral_code=referral_code, contact_hash=contact_hash)
    if recipient is None:
        raise GiftRefused("unknown_recipient", "", subject="gift", subject_id=gift_id)
    identity = _check_sender(conn, sender_id, points, now, policy, "gift", gift_id)
    if recipient == sender_id or _identity(conn, recipient)[0] == identity:
        raise GiftRefused("gift_to_oneself", "", subject="gift", subject_id=gift_id)
    hold_key = f"gift:{gift_id}:hold"
    accept_by = now + timedelta(hours=policy.accept_hours)
    reason = Reason(campaign="gift", source_event=gift_id, note=message[:200] or None)
    try:
        _apply(conn, [Hold(hold_key, sender_id, points, accept_by + HOLD_GRACE,
                           to_partner=GIFT_CLEARING, reason=reason)], now)
    except RequestRejected as error:
        raise GiftRefused(error.code, str(error), subject="gift", subject_id=gift_id) from None
    conn.execute(gifts.insert().values(
        gift_id=gift_id, sender_id=sender_id, recipient_id=recipient, points=points,
        message=message, status="pending", hold_key=hold_key, accept_by=accept_by,
        created_at=now))
    queue_notices(conn, ledger_topic, [notice(hold_key, "hold", sender_id, -points, gift_id, gift={
        "gift_id": gift_id, "role": "sender", "counterparty_id": recipient,
        "status": "pending", "message": message})])
    if policy.delivery == "immediate":
        return _deliver(conn, gift_id, now, ledger_topic)
    view = _gift(conn, gift_id)
    assert view is not None
    return view


def _deliver(conn: Connection, gift_id: str, now: datetime,
             ledger_topic: str | None) -> GiftView:
    gift = _gift(conn, gift_id)
    assert gift is not None
    hold_key = f"gift:{gift_id}:hold"
    lineage = _source_lots(conn, hold_key, gift.points)
    reason = Reason(campaign="gift", source_event=gift_id, note=gift.message[:200] or None)
    _apply(conn, [PostHold(f"gift:{gift_id}:post", hold_key, reason=reason),
                  *_credits(f"gift:{gift_id}", gift.recipient_id, lineage, reason)], now)
    conn.execute(update(gifts).where(gifts.c.gift_id == gift_id).values(
        status="accepted", lineage=lineage, resolved_at=now))
    about = {"gift_id": gift_id, "status": "accepted", "message": gift.message}
    queue_notices(conn, ledger_topic, [
        notice(f"gift:{gift_id}:post", "post", gift.sender_id, 0, gift_id,
              gift={**about, "role": "sender", "counterparty_id": gift.recipient_id}),
        notice(f"gift:{gift_id}:post", "earn", gift.recipient_id, gift.points, gift_id,
              gift={**about, "role": "recipient", "counterparty_id": gift.sender_id,
                    "lots": lineage})])
    view = _gift(conn, gift_id)
    assert view is not None
    return view


def accept_gift(conn: Connection, *, recipient_id: str, gift_id: str,
                now: datetime, ledger_topic: str | None = None) -> GiftView:
    """The recipient takes the gift: the hold is posted to them, lots and expiry kept."""
    # The UPDATE takes the row's lock (PostgreSQL) or the write lock (SQLite) first.
    conn.execute(update(gifts).where(gifts.c.gift_id == gift_id).values(status=gifts.c.status))
    gift = _gift(conn, gift_id)
    if gift is None or gift.recipient_id != recipient_id:
        raise GiftRefused("unknown_gift", "", subject="gift", subject_id=gift_id)
    if gift.status == "accepted":
        return gift
    if gift.status != "pending" or now > gift.accept_by:
        raise GiftRefused("gift_not_pending", f"({gift.status})", subject="gift",
                          subject_id=gift_id)
    return _deliver(conn, gift_id, now, ledger_topic)


# -------------------------------------------------------------------------- red packets


def create_packet(conn: Connection, *, sender_id: str, packet_id: str, total: int,
                  shares: int, split_mode: split.SplitMode, message: str, now: datetime,
                  policy: GiftSettings, expires_in: timedelta | None = None,
                  ledger_topic: str | None = None) -> dict[str, Any]:
    """Hold the packet's whole total; the row carries a fresh claim code and draw seed."""
    existing = packet_row(conn, packet_id=packet_id)
    if existing is not None:
        return existing
    if shares < 1 or total < shares:
        raise GiftRefused("invalid_packet", f"({total} points, {shares} shares)",
                          subject="red_packet", subject_id=packet_id)
    if shares > policy.packet_shares_max:
        raise GiftRefused("too_many_shares", f"({shares} > {policy.packet_shares_max})",
                          subject="red_packet", subject_id=packet_id)
    _check_sender(conn, sender_id, total, now, policy, "red_packet", packet_id)
    lifetime = expires_in or timedelta(hours=policy.packet_expiry_hours_default)
    lifetime = max(lifetime, timedelta(seconds=policy.packet_expiry_s_min))
    expires_at = now + lifetime
    hold_key = f"pkt:{packet_id}:h0"
    reason = Reason(campaign="red_packet", source_event=packet_id, note=message[:200] or None)
    try:
        _apply(conn, [Hold(hold_key, sender_id, total, expires_at + HOLD_GRACE,
                           to_partner=GIFT_CLEARING, reason=reason)], now)
    except RequestRejected as error:
        raise GiftRefused(error.code, str(error), subject="red_packet",
                          subject_id=packet_id) from None
    conn.execute(red_packets.insert().values(
        packet_id=packet_id, code=split.new_claim_code(), sender_id=sender_id, total=total,
        shares=shares, split=split_mode, message=message, seed=split.new_seed(),
        status="open", claimed_count=0, claimed_points=0, hold_key=hold_key,
        expires_at=expires_at, created_at=now))
    queue_notices(conn, ledger_topic, [notice(hold_key, "hold", sender_id, -total, packet_id,
                                       red_packet={"packet_id": packet_id, "role": "sender",
                                                   "shares": shares, "split": split_mode})])
    row = packet_row(conn, packet_id=packet_id)
    assert row is not None
    return row


def packet_row(conn: Connection, *, packet_id: str | None = None,
               code: str | None = None) -> dict[str, Any] | None:
    query = select(red_packets)
    if packet_id is not None:
        query = query.where(red_packets.c.packet_id == packet_id)
    else:
        query = query.where(red_packets.c.code == split.normalise_claim_code(code or ""))
    row = conn.execute(query).mappings().first()
    if row is None:
        return None
    out = dict(row)
    for name in ("expires_at", "created_at", "resolved_at"):
        if out[name] is not None:
            out[name] = utc(out[name])
    return out


def claim_packet(conn: Connection, *, claimant_id: str, code: str,
                 now: datetime, ledger_topic: str | None = None) -> dict[str, Any]:
    """Claim the next share: drawn now from the recorded seed, posted to the claimant."""
    wanted = split.normalise_claim_code(code)
    # Lock the packet first (row lock on PostgreSQL, the write lock on SQLite): claims of one
    # packet run one after another, so the share count and the draw are never raced.
    conn.execute(update(red_packets).where(red_packets.c.code == wanted)
                 .values(claimed_count=red_packets.c.claimed_count))
    packet = packet_row(conn, code=wanted)

    def refuse(reason: str, detail: str = "") -> GiftRefused:
        return GiftRefused(reason, detail, subject="red_packet", subject_id=wanted)

    if packet is None:
        raise refuse("unknown_packet")
    packet_id = packet["packet_id"]
    identity, _since = _identity(conn, claimant_id)
    mine = conn.execute(select(packet_claims).where(
        packet_claims.c.packet_id == packet_id,
        (packet_claims.c.claimant_id == claimant_id) | (packet_claims.c.identity == identity),
    )).mappings().first()
    if mine is not None:
        if mine["claimant_id"] == claimant_id:
            return dict(mine)  # a retried claim: the same share
        raise refuse("already_claimed")
    sender_identity, _ = _identity(conn, packet["sender_id"])
    if claimant_id == packet["sender_id"] or identity == sender_identity:
        raise refuse("own_packet")
    reserved_for_others = conn.execute(
        select(func.count()).select_from(packet_reservations).where(
            packet_reservations.c.packet_id == packet_id,
            packet_reservations.c.used_by.is_(None),
            packet_reservations.c.reserved_until > now,
            packet_reservations.c.contact_hash != identity)
    ).scalar_one()
    if packet["status"] == "claimed" or packet["claimed_count"] >= packet["shares"]:
        raise refuse("packet_empty")
    if int(packet["claimed_count"]) + int(reserved_for_others) >= int(packet["shares"]):
        raise refuse("shares_reserved")
    if packet["status"] != "open":
        raise refuse("packet_closed", f"({packet['status']})")
    if now >= packet["expires_at"]:
        raise refuse("packet_expired")
    share_no = int(packet["claimed_count"]) + 1
    remaining = int(packet["total"]) - int(packet["claimed_points"])
    points = split.draw_share(packet["split"], total=int(packet["total"]),
                              shares=int(packet["shares"]), share_no=share_no,
                              remaining=remaining, seed=packet["seed"])
    rest = remaining - points
    lineage = _source_lots(conn, packet["hold_key"], points)
    reason = Reason(campaign="red_packet", source_event=packet_id,
                    note=packet["message"][:200] or None)
    prefix = f"pkt:{packet_id}:c{share_no}"
    ops: list[Operation] = [PostHold(f"{prefix}:post", packet["hold_key"], amount=points,
                                     reason=reason)]
    next_hold = packet["hold_key"]
    if rest:
        next_hold = f"pkt:{packet_id}:h{share_no}"
        ops.append(Hold(next_hold, packet["sender_id"], rest,
                        packet["expires_at"] + HOLD_GRACE,
                        to_partner=GIFT_CLEARING, reason=reason))
    ops.extend(_credits(prefix, claimant_id, lineage, reason))
    _apply(conn, ops, now)
    conn.execute(update(packet_reservations).where(
        packet_reservations.c.packet_id == packet_id,
        packet_reservations.c.contact_hash == identity,
        packet_reservations.c.used_by.is_(None)).values(used_by=claimant_id))
    conn.execute(packet_claims.insert().values(
        packet_id=packet_id, share_no=share_no, claimant_id=claimant_id, identity=identity,
        points=points, remaining_before=remaining, lineage=lineage, claimed_at=now))
    conn.execute(update(red_packets).where(red_packets.c.packet_id == packet_id).values(
        claimed_count=share_no, claimed_points=int(packet["claimed_points"]) + points,
        hold_key=next_hold, status="claimed" if not rest else "open",
        resolved_at=now if not rest else None))
    about = {"packet_id": packet_id, "share_no": share_no, "sender_id": packet["sender_id"]}
    queue_notices(conn, ledger_topic, [
        notice(f"{prefix}:post", "post", packet["sender_id"], 0, packet_id,
              red_packet={**about, "role": "sender", "claimant_id": claimant_id,
                          "share_points": points}),
        notice(f"{prefix}:post", "earn", claimant_id, points, packet_id,
              red_packet={**about, "role": "claimant", "lots": lineage})])
    record_open(conn, packet_id=packet_id, opener=identity, now=now)
    claim = conn.execute(select(packet_claims).where(
        packet_claims.c.packet_id == packet_id, packet_claims.c.share_no == share_no)
    ).mappings().one()
    return dict(claim)


def _close(conn: Connection, packet: dict[str, Any], status: str, by: str | None,
           now: datetime) -> None:
    """Void what is still held back to the sender and close the packet."""
    reason = Reason(campaign="red_packet", source_event=packet["packet_id"], operator=by,
                    note=f"packet {status}")
    result = apply_batch(conn, [VoidHold(f"pkt:{packet['packet_id']}:{status}",
                                         packet["hold_key"], reason=reason)], now=now)[0]
    if isinstance(result, Rejected) and result.code != "hold_already_resolved":
        raise result.error  # already resolved: the generic hold timeout returned it
    conn.execute(update(red_packets).where(red_packets.c.packet_id == packet["packet_id"])
                 .values(status=status, resolved_at=now, resolved_by=by))


def _open_packet(conn: Connection, packet_id: str) -> dict[str, Any]:
    conn.execute(update(red_packets).where(red_packets.c.packet_id == packet_id)
                 .values(claimed_count=red_packets.c.claimed_count))
    packet = packet_row(conn, packet_id=packet_id)
    if packet is None:
        raise GiftRefused("unknown_packet", "", subject="red_packet", subject_id=packet_id)
    if packet["status"] != "open":
        raise GiftRefused("packet_closed", f"({packet['status']})", subject="red_packet",
                          subject_id=packet_id)
    return packet


def request_void(conn: Connection, *, packet_id: str, operator: str, reason: str,
                 now: datetime) -> dict[str, Any]:
    """The maker's half: an operator asks for an open packet to be voided, with a reason."""
    packet = _open_packet(conn, packet_id)
    if packet["void_requested_by"] is not None:
        raise GiftRefused("void_already_requested", f"(by {packet['void_requested_by']})",
                          subject="red_packet", subject_id=packet_id)
    conn.execute(update(red_packets).where(red_packets.c.packet_id == packet_id).values(
        void_requested_by=operator, void_reason=reason[:500], void_requested_at=now))
    row = packet_row(conn, packet_id=packet_id)
    assert row is not None
    return row


def void_packet(conn: Connection, *, packet_id: str, operator: str,
                now: datetime) -> dict[str, Any]:
    """The checker's half: another operator approves the void; the unclaimed points return
    to the sender (the table's CHECK refuses a void approved by its own requester too)."""
    packet = _open_packet(conn, packet_id)
    if packet["void_requested_by"] is None:
        raise GiftRefused("void_not_requested", "", subject="red_packet", subject_id=packet_id)
    if packet["void_requested_by"] == operator:
        raise GiftRefused("same_operator", "(another operator must approve)",
                          subject="red_packet", subject_id=packet_id)
    _close(conn, packet, "voided", operator, now)
    row = packet_row(conn, packet_id=packet_id)
    assert row is not None
    return row


def sweep(conn: Connection, *, now: datetime, limit: int = 500) -> dict[str, int]:
    """Return expired packets' unclaimed points and unaccepted gifts to their senders."""
    done = {"packets_expired": 0, "gifts_returned": 0}
    due = conn.execute(
        select(red_packets.c.packet_id).where(red_packets.c.status == "open",
                                              red_packets.c.expires_at <= now)
        .order_by(red_packets.c.expires_at).limit(limit)
    ).scalars().all()
    for packet_id in due:
        conn.execute(update(red_packets).where(red_packets.c.packet_id == packet_id)
                     .values(claimed_count=red_packets.c.claimed_count))
        packet = packet_row(conn, packet_id=packet_id)
        if packet is None or packet["status"] != "open":
            continue
        _close(conn, packet, "expired", None, now)
        done["packets_expired"] += 1
    stale = conn.execute(
        select(gifts.c.gift_id, gifts.c.hold_key).where(gifts.c.status == "pending",
                                                        gifts.c.accept_by <= now)
        .limit(limit)
    ).all()
    for gift_id, hold_key in stale:
        result = apply_batch(conn, [VoidHold(f"gift:{gift_id}:return", hold_key,
                                             reason=Reason(campaign="gift",
                                                           source_event=gift_id,
                                                           note="not accepted in time"))],
                             now=now)[0]
        if isinstance(result, Rejected) and result.code != "hold_already_resolved":
            raise result.error
        conn.execute(update(gifts).where(gifts.c.gift_id == gift_id)
                     .values(status="returned", resolved_at=now))
        done["gifts_returned"] += 1
    return done

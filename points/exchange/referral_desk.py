"""Referrals on the ledger: sign-ups with guards, qualification, rewards, clawbacks.

The pure lifecycle is :mod:`points.referrals`; this module loads what its guards need, runs it
and collects what to write into a :class:`~points.exchange.referral_records.Work`, which the
calling desk writes in the same transaction as everything else of its batch (ledger
operations, referral rows, partner fees, partner requests). Codes, the desk's inputs and the
referral rows are in points/exchange/referral_records.py.

Rewards, each in its own program's currency:

- a bank customer (referee of ``customer_invite`` / ``partner_member``, customer referrer):
  bank points, ledger ``Earn(kind="referral")`` under the reward's key ``referral:<id>:<role>``;
- the referee of ``partner_join`` (who joined the partner's program from our app): a
  ``referral_rewarded`` request to the partner, priced into settlement at the contract price;
- a partner referrer: the referral fee the bank owes; the bank as referrer (``partner_join``):
  the fee the partner owes. Both are ``partner_fees`` rows, netted in settlement.

A refund of the qualifying purchase inside the clawback window reverses all of it: ledger
``Clawback`` of each points reward (what the wallet cannot cover becomes debt), and a negative
``partner_fees`` row for each fee or partner-side reward.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, case, func, or_, select

from points import referrals as rl
from points.exchange.referral_records import (
    CustomerSeen,
    Purchase,
    Refund,
    Work,
    ensure_code,
    referral_from_row,
)
from points.exchange.store import aware, dialect_insert, outbox_row
from points.exchange.tables import known_customers, partner_fees, referral_codes, referrals
from points.ledger.model import Clawback, Earn, Reason
from points.partners import settlement_amount_minor
from points.ports import PartnerDirectory

__all__ = ["ReferralDesk"]

#: How far up the referrer's chain of referrers a ring is looked for (each hop one query; a
#: legitimate chain of referrals is short, a longer ring is not worth a farmer's effort).
RING_DEPTH_MAX = 32


class ReferralDesk:
    """Runs the referral lifecycle against the database for the exchange's desks."""

    def __init__(
        self,
        directory: PartnerDirectory,
        *,
        secret: bytes,
        policy: rl.ReferralPolicy,
        zone: ZoneInfo,
        lot_lifetime: timedelta,
        points_ledger_topic: str,
    ) -> None:
        self._directory = directory
        self._secret = secret
        self._policy = policy
        self._zone = zone
        self._lot_lifetime = lot_lifetime
        self._ledger_topic = points_ledger_topic

    @property
    def policy(self) -> rl.ReferralPolicy:
        return self._policy

    # ------------------------------------------------------------------------------- codes

    def code_for(self, conn: Connection, owner_kind: str, owner_id: str, now: datetime) -> str:
        """The owner's referral code, stored on first use (see :func:`ensure_code`)."""
        return ensure_code(conn, self._secret, owner_kind, owner_id, now)

    def code_owner(self, conn: Connection, code: str) -> rl.Party | None:
        row = conn.execute(
            select(referral_codes.c.owner_kind, referral_codes.c.owner_id).where(
                referral_codes.c.code == code
            )
        ).first()
        if row is None:
            return None
        if row[0] == "customer":
            return rl.Party("customer", str(row[1]))
        return rl.Party("partner", str(row[1]))

    # ----------------------------------------------------------------------------- sign-up

    def load(self, conn: Connection, ids: Iterable[str], *, lock: bool = True) -> dict[str, Any]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        query = select(referrals).where(referrals.c.referral_id.in_(wanted))
        if lock:
            query = query.order_by(referrals.c.referral_id).with_for_update()
        return {
            r["referral_id"]: referral_from_row(r) for r in conn.execute(query).mappings()
        }

    def of_referee(self, conn: Connection, referee_id: str) -> list[rl.Referral]:
        """Every referral naming ``referee_id``, oldest invitation first."""
        rows = conn.execute(
            select(referrals).where(referrals.c.referee_id == referee_id)
            .order_by(referrals.c.invited_at, referrals.c.referral_id)
        ).mappings()
        return [referral_from_row(r) for r in rows]

    def sign_up(
        self,
        conn: Connection,
        work: Work,
        referral: rl.Referral,
        referee_id: str,
        now: datetime,
        *,
        identity_hash: str | None = None,
        joined_at: datetime | None = None,
        event_id: str | None = None,
    ) -> rl.Transition | rl.Ignored:
        """Run the guards (facts from the database and this batch) and record the outcome;
        a refusal is also written to ``refusals`` (``referral:<referral_id>``).

        ``joined_at`` is when the referee says they became a customer; None skips the
        ``already_a_customer`` guard (a customer joining a partner program is one already)."""
        referee = rl.Party("customer", referee_id, identity_hash)
        taken = self._referee_owner(conn, work, referee_id, referral.referral_id)
        month, hour = self._referrer_counts(conn, work, referral.referrer, now)
        history, same_identity = (
            self._histories(conn, referee_id, identity_hash) if joined_at is not None
            else (None, ())
        )
        facts = rl.SignupFacts(
            taken, month, hour,
            referrer_chain=self._referrer_chain(conn, work, referral.referrer),
            joined_at=joined_at, referee_history=history, same_identity=same_identity,
        )
        guarded = replace(referral, referrer=self._with_identity(conn, referral.referrer))
        result = rl.sign_up(guarded, referee, facts, self._policy, now)
        stored = replace(result.referral, referrer=referral.referrer)
        if stored.status is rl.ReferralStatus.REFUSED and stored.referee is None:
            # keep who was refused, for the record (refused rows do not count as referred)
            stored = replace(stored, referee=referee, signed_up_at=None)
        work.rows[referral.referral_id] = stored
        work.outcomes[f"signup:{result.reason}"] += 1
        if isinstance(result, rl.Transition) and stored.status is rl.ReferralStatus.REFUSED:
            work.refused(stored, now, event_id)
        return result

    def _with_identity(self, conn: Connection, party: rl.Party) -> rl.Party:
        """The party with the identity hash core banking last sent for it, if any."""
        if party.kind != "customer" or party.identity_hash is not None:
            return party
        found = conn.execute(
            select(known_customers.c.identity_hash)
            .where(known_customers.c.customer_id == party.id)
        ).scalar_one_or_none()
        return party if found is None else replace(party, identity_hash=str(found))

    def _histories(
        self, conn: Connection, referee_id: str, identity_hash: str | None
    ) -> tuple[rl.CustomerHistory | None, tuple[rl.CustomerHistory, ...]]:
        """The referee's own history and that of the other accounts with its identity."""
        wanted = known_customers.c.customer_id == referee_id
        if identity_hash is not None:
            wanted = wanted | (known_customers.c.identity_hash == identity_hash)
        rows = conn.execute(
            select(known_customers.c.customer_id, known_customers.c.known_since,
                   known_customers.c.evidence)
            .where(wanted).order_by(known_customers.c.known_since).limit(20)
        ).all()
        own: rl.CustomerHistory | None = None
        others: list[rl.CustomerHistory] = []
        for customer_id, since, evidence in rows:
            history = rl.CustomerHistory(str(customer_id), aware(since), str(evidence))
            if history.customer_id == referee_id:
                own = history
            else:
                others.append(history)
        return own, tuple(others)

    def _referrer_chain(
        self, conn: Connection, work: Work, referrer: rl.Party
    ) -> tuple[str, ...]:
        """Who referred the referrer, and so on up (customer ids, nearest first)."""
        chain: list[str] = []
        current = referrer
        while current.kind == "customer" and len(chain) < RING_DEPTH_MAX:
            above = self._referrer_of(conn, work, current.id)
            if above is None or above.kind != "customer" or above.id in chain:
                break
            chain.append(above.id)
            current = above
        return tuple(chain)

    def _referrer_of(self, conn: Connection, work: Work, customer_id: str) -> rl.Party | None:
        for r in work.rows.values():
            if (r.referee is not None and r.referee.id == customer_id
                    and r.status is not rl.ReferralStatus.REFUSED):
                return r.referrer
        row = conn.execute(
            select(referrals.c.referral_id, referrals.c.referrer_kind, referrals.c.referrer_id)
            .where(referrals.c.referee_id == customer_id, referrals.c.status != "refused")
            .limit(1)
        ).first()
        if row is None:
            return None
        current = work.rows.get(str(row[0]))
        if current is not None and current.status is rl.ReferralStatus.REFUSED:
            return None
        return rl.Party(row[1], str(row[2]))

    def note_customers(self, conn: Connection, seen: Sequence[CustomerSeen], now: datetime) -> None:
        """Remember since when each customer id is known (the earliest evidence wins) and its
        latest identity hash; one statement per batch, rows rewritten only when they change."""
        merged: dict[str, CustomerSeen] = {}
        for s in seen:
            prev = merged.get(s.customer_id)
            if prev is None:
                merged[s.customer_id] = s
                continue
            earliest = s if s.known_since < prev.known_since else prev
            merged[s.customer_id] = replace(
                earliest, identity_hash=s.identity_hash or prev.identity_hash)
        if not merged:
            return
        rows = [
            {"customer_id": s.customer_id, "known_since": s.known_since,
             "evidence": s.evidence[:128], "identity_hash": s.identity_hash, "updated_at": now}
            for s in sorted(merged.values(), key=lambda x: x.customer_id)
        ]
        stmt = dialect_insert(conn, known_customers)
        new, old = stmt.excluded, known_customers.c
        earlier = new.known_since < old.known_since
        stmt = stmt.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={
                "known_since": case((earlier, new.known_since), else_=old.known_since),
                "evidence": case((earlier, new.evidence), else_=old.evidence),
                "identity_hash": func.coalesce(new.identity_hash, old.identity_hash),
                "updated_at": new.updated_at,
            },
            where=or_(
                earlier,
                and_(new.identity_hash.is_not(None),
                     or_(old.identity_hash.is_(None), new.identity_hash != old.identity_hash)),
            ),
        )
        conn.execute(stmt, rows)

    def _referee_owner(
        self, conn: Connection, work: Work, referee_id: str, referral_id: str
    ) -> str | None:
        for r in work.rows.values():
            if (
                r.referee is not None
                and r.referee.id == referee_id
                and r.status is not rl.ReferralStatus.REFUSED
                and r.referral_id != referral_id
            ):
                return r.referral_id
        found = conn.execute(
            select(referrals.c.referral_id).where(
                referrals.c.referee_id == referee_id,
                referrals.c.status != "refused",
                referrals.c.referral_id != referral_id,
            )
        ).first()
        if found is None:
            return None
        # the database row may have been refused by this very batch
        current = work.rows.get(str(found[0]))
        if current is not None and current.status is rl.ReferralStatus.REFUSED:
            return None
        return str(found[0])

    def _referrer_counts(
        self, conn: Connection, work: Work, referrer: rl.Party, now: datetime
    ) -> tuple[int, int]:
        local = now.astimezone(self._zone)
        month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        hour_ago = now - timedelta(hours=1)
        counted = referrals.c.status.not_in(("refused", "invited"))
        base = and_(
            referrals.c.referrer_kind == referrer.kind,
            referrals.c.referrer_id == referrer.id,
            counted,
        )
        in_batch = [r for r in work.rows.values() if r.referrer == referrer]
        batch_ids = [r.referral_id for r in in_batch]
        month = int(
            conn.execute(
                select(func.count()).where(
                    base,
                    referrals.c.signed_up_at >= month_start,
                    referrals.c.referral_id.not_in(batch_ids),
                )
            ).scalar_one()
        )
        hour = int(
            conn.execute(
                select(func.count()).where(
                    base,
                    referrals.c.signed_up_at >= hour_ago,
                    referrals.c.referral_id.not_in(batch_ids),
                )
            ).scalar_one()
        )
        for r in in_batch:
            if r.status in (rl.ReferralStatus.INVITED, rl.ReferralStatus.REFUSED):
                continue
            if r.signed_up_at is not None and r.signed_up_at >= month_start:
                month += 1
            if r.signed_up_at is not None and r.signed_up_at >= hour_ago:
                hour += 1
        return month, hour

    # ------------------------------------------------------------------------ qualification

    def qualify(self, conn: Connection, work: Work, purchases: Sequence[Purchase]) -> None:
        """The referees' first qualifying transactions: reward both sides."""
        customers = sorted({p.customer_id for p in purchases})
        if not customers:
            return
        open_by_referee: dict[str, rl.Referral] = {}
        rows = conn.execute(
            select(referrals)
            .where(referrals.c.referee_id.in_(customers), referrals.c.status == "signed_up")
            .order_by(referrals.c.referral_id)
            .with_for_update()
        ).mappings()
        for row in rows:
            referral = work.rows.get(row["referral_id"]) or referral_from_row(row)
            open_by_referee[row["referee_id"]] = referral
        for r in work.rows.values():  # signed up earlier in this batch
            if r.status is rl.ReferralStatus.SIGNED_UP and r.referee is not None:
                open_by_referee.setdefault(r.referee.id, r)
        for purchase in purchases:
            found = open_by_referee.get(purchase.customer_id)
            if found is None or found.status is not rl.ReferralStatus.SIGNED_UP:
                continue
            referral = found
            if referral.status is not rl.ReferralStatus.SIGNED_UP:
                continue
            before = self._rewarded_before(conn, work, referral.referrer)
            txn = rl.QualifyingTransaction(
                purchase.event_id, purchase.customer_id, purchase.amount_minor, purchase.at
            )
            result = rl.qualify(referral, txn, self._policy, referrer_rewarded_before=before)
            work.outcomes[f"qualify:{result.reason}"] += 1
            if isinstance(result, rl.Ignored):
                continue
            moved = result.referral
            if moved.status is rl.ReferralStatus.REFUSED:  # window_passed
                work.refused(moved, purchase.at, purchase.event_id)
            if isinstance(result.action, rl.GrantRewards):
                self._grant(work, moved, result.action.rewards, purchase.at)
                granted = rl.rewards_granted(moved, purchase.at)
                moved = granted.referral
            work.rows[moved.referral_id] = moved
            open_by_referee[purchase.customer_id] = moved

    def _rewarded_before(self, conn: Connection, work: Work, referrer: rl.Party) -> int:
        if referrer.kind != "customer":
            return 0
        in_batch = [r for r in work.rows.values() if r.referrer == referrer]
        ids = [r.referral_id for r in in_batch]
        stored = int(
            conn.execute(
                select(func.count()).where(
                    referrals.c.referrer_kind == referrer.kind,
                    referrals.c.referrer_id == referrer.id,
                    referrals.c.status == "rewarded",
                    referrals.c.referral_id.not_in(ids),
                )
            ).scalar_one()
        )
        return stored + sum(1 for r in in_batch if r.status is rl.ReferralStatus.REWARDED)

    def _grant(
        self, work: Work, referral: rl.Referral, rewards: Sequence[rl.Reward], at: datetime
    ) -> None:
        partner_id = referral.partner_id
        for reward in rewards:
            who = reward.beneficiary
            partner_side = referral.origin is rl.Origin.PARTNER_JOIN and reward.role == "referee"
            if partner_side and partner_id is not None and reward.points:
                self._partner_side_reward(work, referral, reward, partner_id, at)
            elif who.kind == "customer" and reward.points:
                work.operations.append(
                    Earn(
                        idempotency_key=reward.idempotency_key,
                        customer_id=who.id,
                        amount=reward.points,
                        expires_at=at + self._lot_lifetime,
                        kind="referral",
                        reason=Reason(campaign=f"referral:{reward.role}",
                                      source_event=referral.referral_id),
                    )
                )
                work.op_customers.append(who.id)
            elif reward.amount_minor and partner_id is not None:
                # partner referrer: the bank owes the fee; the bank as referrer: the partner does
                sign = 1 if who.kind == "partner" else -1
                work.fees.append(
                    {
                        "fee_key": reward.idempotency_key,
                        "partner_id": partner_id,
                        "referral_id": referral.referral_id,
                        "kind": "referral_fee",
                        "amount_minor": sign * reward.amount_minor,
                        "partner_points": 0,
                        "at": at,
                    }
                )

    def _partner_side_reward(
        self, work: Work, referral: rl.Referral, reward: rl.Reward, partner_id: str, at: datetime
    ) -> None:
        program = self._directory.get(partner_id)
        assert referral.referee is not None
        message = program.referral_reward(
            reward_id=reward.idempotency_key,
            customer_id=referral.referee.id,
            points=reward.points,
            referral_id=referral.referral_id,
            now=at,
        )
        work.outbox.append(outbox_row(message, f"{reward.idempotency_key}:request"))
        work.fees.append(
            {
                "fee_key": reward.idempotency_key,
                "partner_id": partner_id,
                "referral_id": referral.referral_id,
                "kind": "referral_reward",
                "amount_minor": settlement_amount_minor(program.config, reward.points),
                "partner_points": reward.points,
                "at": at,
            }
        )

    # ---------------------------------------------------------------------------- refunds

    def refund(self, conn: Connection, work: Work, refunds: Sequence[Refund]) -> None:
        originals = sorted({r.original_event_id for r in refunds})
        if not originals:
            return
        rows = conn.execute(
            select(referrals)
            .where(
                referrals.c.qualifying_event_id.in_(originals),
                referrals.c.status.in_(("qualified", "rewarded")),
            )
            .order_by(referrals.c.referral_id)
            .with_for_update()
        ).mappings()
        by_event = {r["qualifying_event_id"]: referral_from_row(r) for r in rows}
        for r in work.rows.values():
            if r.qualifying_event_id in originals:
                by_event[r.qualifying_event_id] = r
        fees = self._fees_of([r.referral_id for r in by_event.values()], conn)
        for refund in refunds:
            referral = by_event.get(refund.original_event_id)
            if referral is None:
                continue
            result = rl.refund(referral, refund.original_event_id, refund.at, self._policy)
            work.outcomes[f"refund:{result.reason}"] += 1
            if isinstance(result, rl.Ignored):
                continue
            work.rows[referral.referral_id] = result.referral
            by_event[refund.original_event_id] = result.referral
            fee_rows = fees.get(referral.referral_id, {})
            for reward in referral.rewards:
                fee = fee_rows.get(reward.idempotency_key) or next(
                    (f for f in work.fees if f["fee_key"] == reward.idempotency_key), None
                )
                if fee is not None:
                    work.fees.append(
                        {
                            **fee,
                            "fee_key": f"{reward.idempotency_key}:clawback",
                            "kind": f"{fee['kind']}_clawback",
                            "amount_minor": -int(fee["amount_minor"]),
                            "partner_points": -int(fee["partner_points"]),
                            "at": refund.at,
                        }
                    )
                elif reward.points and reward.beneficiary.kind == "customer":
                    work.operations.append(
                        Clawback(
                            idempotency_key=f"{reward.idempotency_key}:clawback",
                            earning_key=reward.idempotency_key,
                            reason=Reason(campaign="referral:clawback",
                                          source_event=refund.event_id),
                        )
                    )
                    work.op_customers.append(reward.beneficiary.id)

    def _fees_of(self, ids: Sequence[str], conn: Connection) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for row in conn.execute(
            select(partner_fees).where(partner_fees.c.referral_id.in_(list(ids)))
        ).mappings():
            out.setdefault(row["referral_id"], {})[row["fee_key"]] = dict(row)
        return out

    # ------------------------------------------------------------------------------ timer

    def expire_due(self, conn: Connection, work: Work, now: datetime, limit: int) -> int:
        rows = conn.execute(
            select(referrals)
            .where(referrals.c.status == "signed_up", referrals.c.qualify_by < now)
            .order_by(referrals.c.qualify_by)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).mappings()
        n = 0
        for row in rows:
            result = rl.expire(referral_from_row(row), now)
            if isinstance(result, rl.Transition):
                work.rows[row["referral_id"]] = result.referral
                work.refused(result.referral, now, None)
                n += 1
        return n

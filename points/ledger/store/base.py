"""The ledger store's interface and everything both databases share.

:class:`Store` holds the batch path's SQL that reads the same on both databases (given how a
list parameter is passed, see :meth:`Store._in`) and the work around it: turning a batch's
drafts into rows, deciding which accounts must be created, reading rows back into the engine's
records. What differs is behind abstract methods that :class:`~points.ledger.store.pg.PgStore`
and :class:`~points.ledger.store.sqlite.SqliteStore` implement.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, cast

from sqlalchemy import Connection

from points.ledger.batch_state import EntryDraft, EntryInfo, HoldState, LotState
from points.ledger.model import (
    HOT_KINDS,
    NO_REASON,
    AccountKind,
    AccountRef,
    reason_json,
)

__all__ = ["CUSTOMER_KINDS_SQL", "BatchRows", "KeyTaken", "Store", "StoredEntry"]

CUSTOMER_KINDS_SQL: Final = "('wallet', 'held', 'receivable')"

Row = tuple[Any, ...]


class KeyTaken(Exception):
    """An optimistic write met an idempotency key that is already stored (see Store.write)."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry_id: int
    request_hash: int
    status: str
    reject_code: str | None
    reject_message: str | None


@dataclass(slots=True)
class BatchRows:
    """A batch's drafts as rows per table, in the order :meth:`Store.write` builds them."""

    entries: list[Row] = field(default_factory=list)
    lots: list[Row] = field(default_factory=list)  # expires_at still a datetime
    legs: list[Row] = field(default_factory=list)
    moves: list[Row] = field(default_factory=list)
    lot_deltas: dict[int, int] = field(default_factory=dict)  # lot id -> change of remaining
    holds: list[Row] = field(default_factory=list)
    resolutions: list[Row] = field(default_factory=list)


new_tuple = tuple.__new__  # an AccountRef from a row slice, without NamedTuple.__new__


def _ref(program: str, owner: str, kind: str) -> AccountRef:
    return AccountRef(program, owner, cast(AccountKind, kind))


class Store(ABC):
    """One batch's view of the database through the caller's connection; never commits.

    Made by :func:`points.ledger.store.open_store`, which picks the subclass for the
    connection's database.
    """

    optimistic_writes: ClassVar[bool]
    """Whether :meth:`write` can take ``optimistic=True`` (insert first, let the unique key
    say a key is stored: see ``points.ledger.service.OPTIMISTIC_BATCH_MIN``)."""

    SAVEPOINT: Final = "points_ledger_batch"

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # (program, owner) pairs whose customer accounts load_customers last read: any of
        # their accounts missing from its ids did not exist then (see resolve_accounts)
        self.customers_read: set[tuple[str, str]] = set()

    # --- what each database says its own way ---------------------------------------------

    @abstractmethod
    def hold_write_lock(self) -> None:
        """Make every read of the batch happen under the lock its writes will need."""

    @abstractmethod
    def _sql(self, sql: str) -> str:
        """``sql`` (written with ``?`` placeholders) in the driver's parameter style."""

    @abstractmethod
    def _in(self, column: str, cast_to: str) -> str:
        """``column`` is in the list passed as the next parameter (see :meth:`_list`)."""

    @abstractmethod
    def _list(self, values: Iterable[Any]) -> Any:
        """A list of values as one parameter, for :meth:`_in`."""

    @abstractmethod
    def time(self, value: datetime) -> Any:
        """An aware time as the driver should receive it."""

    @abstractmethod
    def allocate_ids(self, count: int) -> list[int]:
        """Entry ids for the batch's new operations, known before anything is written."""

    @abstractmethod
    def _customer_rows(self, locked: list[tuple[str, str]],
                       unlocked: list[tuple[str, str]]) -> list[Any]:
        """(account id, program, owner, kind, balance or None) of the customers' accounts."""

    @abstractmethod
    def _select_ids(self, refs: Sequence[AccountRef], ids: dict[AccountRef, int]) -> None:
        """Add the ids of those of ``refs`` that exist to ``ids``."""

    @abstractmethod
    def _create_accounts(self, missing: Sequence[AccountRef], ids: dict[AccountRef, int],
                         now: datetime) -> None:
        """Create ``missing`` (and their balance rows) unless another writer did; add their
        ids to ``ids``."""

    @abstractmethod
    def _insert(self, now: datetime, rows: BatchRows, *, optimistic: bool) -> None:
        """Insert the batch's rows, in foreign-key order."""

    # --- shared helpers -----------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.conn.exec_driver_sql(self._sql(sql), tuple(params)).fetchall())

    def _many(self, sql: str, rows: list[Row]) -> None:
        if rows:
            self.conn.exec_driver_sql(self._sql(sql), rows)

    def read_time(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)

    # --- savepoint for the optimistic path ----------------------------------------------

    def savepoint(self) -> None:
        self.conn.exec_driver_sql(f"SAVEPOINT {self.SAVEPOINT}")

    def release_savepoint(self) -> None:
        self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {self.SAVEPOINT}")

    def rollback_to_savepoint(self) -> None:
        self.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {self.SAVEPOINT}")
        self.conn.exec_driver_sql(f"RELEASE SAVEPOINT {self.SAVEPOINT}")

    # --- idempotency --------------------------------------------------------------------

    def existing(self, keys: Sequence[str]) -> dict[str, StoredEntry]:
        if not keys:
            return {}
        rows = self._rows(
            "SELECT idempotency_key, id, request_hash, status, reject_code, reject_message"
            " FROM ledger_entries WHERE " + self._in("idempotency_key", "text"),
            (self._list(keys),),
        )
        return {r[0]: StoredEntry(r[1], r[2], r[3], r[4], r[5]) for r in rows}

    # --- loading ------------------------------------------------------------------------

    def holds_by_key(self, keys: Iterable[str]) -> dict[str, HoldState]:
        keys = list(keys)
        if not keys:
            return {}
        return self._holds("e." + self._in("idempotency_key", "text").strip(),
                           (self._list(keys),))

    def due_holds(self, program: str, as_of: datetime, limit: int) -> dict[str, HoldState]:
        return self._holds(
            "e.program = ? AND h.timeout_at <= ? AND r.hold_entry_id IS NULL"
            " ORDER BY h.timeout_at, h.entry_id LIMIT ?",
            (program, self.time(as_of), max(limit, 0)),
        )

    def _holds(self, where: str, params: Sequence[Any]) -> dict[str, HoldState]:
        rows = self._rows(
            "SELECT e.idempotency_key, h.entry_id, e.program, e.customer_id, h.amount,"
            " h.timeout_at, d.program, d.owner, d.kind, r.hold_entry_id"
            " FROM ledger_entries e"
            " JOIN ledger_holds h ON h.entry_id = e.id"
            " JOIN ledger_accounts d ON d.id = h.destination_account_id"
            " LEFT JOIN ledger_hold_resolutions r ON r.hold_entry_id = h.entry_id"
            " WHERE " + where,
            params,
        )
        holds = {
            r[0]: HoldState(
                r[1], r[0], r[2], r[3], r[4], self.read_time(r[5]), _ref(r[6], r[7], r[8]),
                [], r[9] is not None,
            )
            for r in rows
        }
        by_id = {h.entry_id: h for h in holds.values()}
        if by_id:
            for entry_id, lot_id, delta in self._rows(
                "SELECT m.entry_id, m.lot_id, m.delta FROM ledger_lot_moves m"
                " JOIN ledger_lots l ON l.entry_id = m.lot_id"
                " WHERE " + self._in("m.entry_id", "bigint")
                + " ORDER BY m.entry_id, l.expires_at, l.entry_id",
                (self._list(by_id),),
            ):
                by_id[entry_id].consumed.append((lot_id, -delta))
        return holds

    def entries_by_key(self, keys: Iterable[str]) -> dict[str, EntryInfo]:
        """Committed entries that operations refer to, with legs, lot moves and status."""
        keys = list(keys)
        if not keys:
            return {}
        rows = self._rows(
            "SELECT e.id, e.idempotency_key, e.kind, e.program, e.customer_id, e.amount,"
            " (SELECT count(*) FROM ledger_entries r WHERE r.reverses_entry_id = e.id),"
            " (SELECT coalesce(sum(c.amount), 0) FROM ledger_entries c"
            "   WHERE c.target_entry_id = e.id AND c.kind = 'clawback'"
            "   AND c.status = 'committed'),"
            " (SELECT count(*) FROM ledger_lots l WHERE l.entry_id = e.id)"
            " FROM ledger_entries e WHERE e.status = 'committed' AND "
            + self._in("e.idempotency_key", "text"),
            (self._list(keys),),
        )
        infos = {
            r[1]: EntryInfo(r[0], r[1], r[2], r[3], r[4], r[5], [], [],
                            r[0] if r[8] else None, bool(r[6]), int(r[7]))
            for r in rows
        }
        by_id = {info.entry_id: info for info in infos.values()}
        if by_id:
            for r in self._rows(
                "SELECT g.entry_id, da.program, da.owner, da.kind, ca.program, ca.owner,"
                " ca.kind, g.amount FROM ledger_legs g"
                " JOIN ledger_accounts da ON da.id = g.debit_account_id"
                " JOIN ledger_accounts ca ON ca.id = g.credit_account_id"
                " WHERE " + self._in("g.entry_id", "bigint") + " ORDER BY g.entry_id, g.leg_no",
                (self._list(by_id),),
            ):
                by_id[r[0]].legs.append((_ref(r[1], r[2], r[3]), _ref(r[4], r[5], r[6]), r[7]))
            for entry_id, lot_id, delta in self._rows(
                "SELECT entry_id, lot_id, delta FROM ledger_lot_moves WHERE "
                + self._in("entry_id", "bigint") + " ORDER BY entry_id, lot_id",
                (self._list(by_id),),
            ):
                by_id[entry_id].lot_moves.append((lot_id, delta))
        return infos

    def due_lot_customers(self, program: str, as_of: datetime, limit: int) -> set[str]:
        rows = self._rows(
            "SELECT DISTINCT a.owner FROM (SELECT account_id FROM ledger_lots"
            "  WHERE remaining > 0 AND expires_at <= ? ORDER BY expires_at, entry_id LIMIT ?) l"
            " JOIN ledger_accounts a ON a.id = l.account_id WHERE a.program = ?",
            (self.time(as_of), max(limit, 0), program),
        )
        return {r[0] for r in rows}

    def load_customers(
        self, debtors: Iterable[tuple[str, str]], creditors: Iterable[tuple[str, str]]
    ) -> tuple[dict[AccountRef, int], dict[AccountRef, int]]:
        """Balances and ids of the customers' existing accounts.

        ``debtors`` (customers whose accounts the batch may debit) are locked up front in
        account-id order: one global order, so writers that share customers cannot deadlock,
        and what the batch decides from their balances stays true until it commits.
        ``creditors`` (customers the batch only credits: earnings) are read without a lock,
        and (on PostgreSQL) their wallet balance is not read at all: a credit cannot break a
        sign rule, credits commute, and the receivable's CHECK refuses a debt paid twice by
        racing earnings.
        """
        locked = sorted(set(debtors))
        # unordered: read without locks, into dicts (sorting them cost more than the query)
        unlocked = list(set(creditors).difference(locked))
        self.customers_read = {*locked, *unlocked}
        balances: dict[AccountRef, int] = {}
        ids: dict[AccountRef, int] = {}
        for row in self._customer_rows(locked, unlocked):
            ref = new_tuple(AccountRef, row[1:4])
            ids[ref] = row[0]
            balance = row[4]
            if balance is not None:
                balances[ref] = balance
        return balances, ids

    def open_lots(self, wallets: dict[int, AccountRef]) -> dict[AccountRef, list[LotState]]:
        """Every lot with points left in these wallets, soonest expiry first."""
        out: dict[AccountRef, list[LotState]] = {ref: [] for ref in wallets.values()}
        if not wallets:
            return out
        for lot_id, account_id, expires_at, amount, remaining in self._rows(
            "SELECT entry_id, account_id, expires_at, amount, remaining FROM ledger_lots"
            " WHERE remaining > 0 AND " + self._in("account_id", "bigint")
            + " ORDER BY account_id, expires_at, entry_id",
            (self._list(wallets),),
        ):
            ref = wallets[account_id]
            out[ref].append(LotState(lot_id, ref, self.read_time(expires_at), amount, remaining))
        return out

    def lots_by_id(self, lot_ids: Iterable[int]) -> dict[int, LotState]:
        lot_ids = list(lot_ids)
        if not lot_ids:
            return {}
        rows = self._rows(
            "SELECT l.entry_id, a.program, a.owner, a.kind, l.expires_at, l.amount, l.remaining"
            " FROM ledger_lots l JOIN ledger_accounts a ON a.id = l.account_id"
            " WHERE " + self._in("l.entry_id", "bigint"),
            (self._list(lot_ids),),
        )
        return {
            r[0]: LotState(r[0], _ref(r[1], r[2], r[3]), self.read_time(r[4]), r[5], r[6])
            for r in rows
        }

    # --- accounts -----------------------------------------------------------------------

    def resolve_accounts(self, refs: Iterable[AccountRef], ids: dict[AccountRef, int],
                         now: datetime) -> None:
        """Fill ``ids`` for ``refs``, creating missing accounts (and their balance rows)."""
        wanted = sorted({ref for ref in refs if ref not in ids})
        if not wanted:
            return
        # A customer account of a customer load_customers read, and not in ids, did not exist
        # when it read: no need to look again (most of a batch's new wallets). One created
        # since by another writer is met by ON CONFLICT below and looked up after it.
        read = self.customers_read
        lookup = [ref for ref in wanted if ref[2] in HOT_KINDS or (ref[0], ref[1]) not in read]
        if lookup:
            self._select_ids(lookup, ids)
        missing = [ref for ref in wanted if ref not in ids]
        if not missing:
            return
        self._create_accounts(missing, ids, now)
        lost = [ref for ref in missing if ref not in ids]
        if lost:  # pragma: no cover - would mean the unique key failed us
            raise RuntimeError(f"accounts not created: {lost}")

    # --- writing ------------------------------------------------------------------------

    def write(self, drafts: Sequence[EntryDraft], ids: dict[AccountRef, int],
              now: datetime, *, optimistic: bool = False) -> None:
        """Insert the batch: the drafts as rows per table, written in foreign-key order.

        ``optimistic`` (only where :attr:`optimistic_writes`): the keys were not looked up
        first. The entries go in with ``ON CONFLICT (idempotency_key) DO NOTHING`` before
        anything else, and if any key is taken :class:`KeyTaken` is raised with nothing else
        written, for the caller to roll back to its savepoint and take the looked-up path.
        """
        rows = BatchRows()
        move_rows, lot_deltas = rows.moves, rows.lot_deltas
        hold_rows, resolution_rows = rows.holds, rows.resolutions
        add_entry, add_leg, add_lot = rows.entries.append, rows.legs.append, rows.lots.append
        for d in drafts:
            error = d.error
            reason = d.reason
            text = None if reason is None or reason is NO_REASON else reason_json(reason)
            entry_id = d.entry_id
            if error is None:
                add_entry((
                    entry_id, d.key, d.kind, "committed", d.request_hash, d.program,
                    d.customer_id, d.amount, None, None, text, d.reverses_entry_id,
                    d.target_entry_id,
                ))
            else:
                add_entry((
                    entry_id, d.key, d.kind, "rejected", d.request_hash, d.program,
                    d.customer_id, d.amount, error.code, error.message[:500], text,
                    d.reverses_entry_id, d.target_entry_id,
                ))
                continue
            legs = d.legs
            if len(legs) == 1:  # an earning: one leg, no enumerate
                debit, credit, amount = legs[0]
                add_leg((entry_id, 0, ids[debit], ids[credit], amount))
            else:
                for n, (debit, credit, amount) in enumerate(legs):
                    add_leg((entry_id, n, ids[debit], ids[credit], amount))
            if d.new_lot:
                wallet, expires_at, amount = d.new_lot
                add_lot((entry_id, ids[wallet], expires_at, amount))  # time: converted later
            if d.lot_moves:
                moves: dict[int, int] = {}
                for lot_id, delta in d.lot_moves:  # one row per lot per entry (e.g. two
                    moves[lot_id] = moves.get(lot_id, 0) + delta  # expired holds, one lot)
                for lot_id, delta in moves.items():
                    if delta:
                        move_rows.append((entry_id, lot_id, delta))
                        lot_deltas[lot_id] = lot_deltas.get(lot_id, 0) + delta
            if d.new_hold:
                h = d.new_hold
                hold_rows.append((entry_id, ids[h.wallet], ids[h.held], ids[h.destination],
                                  h.amount, self.time(h.timeout_at)))
            for hold_id, outcome, posted in d.resolutions:
                resolution_rows.append((hold_id, entry_id, outcome, posted))
        self._insert(now, rows, optimistic=optimistic)

"""SQL for the batch path: load what a batch reads, write what it decided, set-based.

PostgreSQL gets array parameters (``unnest``/``ANY``: one statement per table per batch);
SQLite gets ``executemany`` and ``json_each`` lists (one writer, in-process, no round trips).
Both are driven through the caller's ``Connection`` and never commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Connection

from points.ledger.batch_state import EntryDraft, EntryInfo, HoldState, LotState
from points.ledger.model import (
    ACCOUNT_SIGN,
    HOT_KINDS,
    NO_REASON,
    AccountKind,
    AccountRef,
    reason_json,
)
from points.pgarrays import int_array_literal as _ints
from points.pgarrays import text_array_literal as _texts

__all__ = ["HOT_SHARDS", "KeyTaken", "Store", "StoredEntry"]

HOT_SHARDS: Final = 8
"""Balance rows per hot account on PostgreSQL: concurrent writers each take a free one."""

CUSTOMER_KINDS_SQL: Final = "('wallet', 'held', 'receivable')"


class KeyTaken(Exception):
    """An optimistic write met an idempotency key that is already stored (see Store.write)."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry_id: int
    request_hash: int
    status: str
    reject_code: str | None
    reject_message: str | None


def _times(values: Iterable[datetime]) -> str:
    text: dict[datetime, str] = {}  # a batch has few distinct times: format each once
    out = []
    for v in values:
        t = text.get(v)
        if t is None:
            t = text[v] = '"' + v.isoformat() + '"'
        out.append(t)
    return "{" + ",".join(out) + "}"


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_EXACT_MICROS: Final = 2**53
"""PostgreSQL multiplies ``bigint * interval`` in float8, exact for integers below 2**53
(1685 to 2255 as microseconds from the epoch; checked against the text form)."""
EPOCH_MICROS_SQL: Final = "timestamptz 'epoch' + {} * interval '1 microsecond'"


def _epoch_micros(values: Sequence[datetime]) -> str | None:
    """Aware times as one bigint array literal of microseconds since the epoch, for
    ``EPOCH_MICROS_SQL``: a quarter of the cost of ``isoformat`` (measured), the same
    instants. None when a time is naive or too far out to be exact: send ``_times``."""
    try:
        micros = [(v - _EPOCH) // _MICROSECOND for v in values]
    except TypeError:  # naive: only its text says what it means
        return None
    if micros and (min(micros) <= -_EXACT_MICROS or max(micros) >= _EXACT_MICROS):
        return None
    return "{" + ",".join(map(str, micros)) + "}"


_new_tuple = tuple.__new__  # an AccountRef from a row slice, without NamedTuple.__new__


def _ref(program: str, owner: str, kind: str) -> AccountRef:
    return AccountRef(program, owner, cast(AccountKind, kind))


class Store:
    """One batch's view of the database through the caller's connection."""

    def hold_write_lock(self) -> None:
        """On SQLite, take the database's write lock before the batch reads anything.

        Python's sqlite3 driver runs SELECTs outside a transaction until the first write, so
        the batch's reads (next entry id, balances, lots) could see a state another process
        is about to change, and two processes then chose the same entry ids (seen in the
        demo: the earning worker, the partner worker and the API share one SQLite file). A
        no-op write first makes the driver BEGIN and SQLite grant the write lock (waiting up
        to busy_timeout), so every read of the batch is under it. PostgreSQL locks rows
        instead (FOR UPDATE, sequences) and needs nothing here.
        """
        if not self.pg:
            self.conn.exec_driver_sql("UPDATE ledger_accounts SET id = id WHERE id = -1")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        # (program, owner) pairs whose customer accounts load_customers last read: any of
        # their accounts missing from its ids did not exist then (see resolve_accounts)
        self.customers_read: set[tuple[str, str]] = set()
        if not self.pg and conn.dialect.name != "sqlite":  # pragma: no cover
            raise NotImplementedError(f"unsupported database {conn.dialect.name}")

    # --- dialect helpers ----------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.conn.exec_driver_sql(self._sql(sql), tuple(params)).fetchall())

    def _many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.conn.exec_driver_sql(self._sql(sql), rows)

    def _in(self, column: str, cast_to: str) -> str:
        """``column`` is in the list passed as the next parameter (see :meth:`_list`)."""
        if self.pg:
            return f"{column} = ANY(?::{cast_to}[])"
        return f"{column} IN (SELECT value FROM json_each(?))"

    def _list(self, values: Iterable[Any]) -> Any:
        values = list(values)
        if not self.pg:
            return json.dumps(values)
        if values and isinstance(values[0], str):
            return _texts(values)
        return _ints(values)

    def time(self, value: datetime) -> Any:
        if self.pg:
            return value
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def read_time(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)

    # --- savepoint for the optimistic path (PostgreSQL) ---------------------------------

    SAVEPOINT: Final = "points_ledger_batch"

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

    def allocate_ids(self, count: int) -> list[int]:
        """Entry ids for the batch's new operations, known before anything is written."""
        if count == 0:
            return []
        if self.pg:
            # one text value, not 1,000 rows: fetching rows one by one cost 3 ms a batch
            (joined,) = self._rows(
                "SELECT string_agg(nextval('ledger_entries_id_seq')::text, ',')"
                " FROM generate_series(1, ?)", (count,)
            )[0]
            return list(map(int, joined.split(",")))
        # SQLite has one writer; a concurrent one makes this transaction fail, not collide.
        top = self._rows("SELECT coalesce(max(id), 0) FROM ledger_entries")[0][0]
        return list(range(top + 1, top + 1 + count))

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
        and their wallet balance is not read at all: a credit cannot break a sign rule, credits
        commute, and the receivable's CHECK refuses a debt paid twice by racing earnings.
        """
        locked = sorted(set(debtors))
        # unordered: read without locks, into dicts (sorting them cost more than the query)
        unlocked = list(set(creditors).difference(locked))
        self.customers_read = {*locked, *unlocked}
        balances: dict[AccountRef, int] = {}
        ids: dict[AccountRef, int] = {}
        rows: list[Any] = []
        if self.pg:
            if locked:
                rows.extend(self._rows(
                    "SELECT b.account_id, a.program, a.owner, a.kind, b.balance"
                    " FROM ledger_accounts a JOIN ledger_balances b"
                    "  ON b.account_id = a.id AND b.shard = 0"
                    " WHERE (a.program, a.owner) IN"
                    "  (SELECT * FROM unnest(?::text[], ?::text[]))"
                    f" AND a.kind IN {CUSTOMER_KINDS_SQL}"
                    " ORDER BY b.account_id FOR UPDATE OF b",
                    (_texts([p for p, _ in locked]), _texts([o for _, o in locked])),
                ))
            if unlocked:
                rows.extend(self._rows(
                    "SELECT a.id, a.program, a.owner, a.kind,"
                    " CASE WHEN a.kind = 'wallet' THEN NULL ELSE (SELECT b.balance"
                    "  FROM ledger_balances b WHERE b.account_id = a.id AND b.shard = 0) END"
                    " FROM ledger_accounts a"
                    " WHERE (a.program, a.owner) IN"
                    "  (SELECT * FROM unnest(?::text[], ?::text[]))"
                    f" AND a.kind IN {CUSTOMER_KINDS_SQL}",
                    (_texts([p for p, _ in unlocked]), _texts([o for _, o in unlocked])),
                ))
        else:
            # SQLite: one writer at a time, no row locks; read everyone's balances.
            by_program: dict[str, list[str]] = {}
            for program, owner in (*locked, *unlocked):
                by_program.setdefault(program, []).append(owner)
            for program, owners in by_program.items():
                rows.extend(self._rows(
                    "SELECT b.account_id, a.program, a.owner, a.kind, b.balance"
                    " FROM ledger_accounts a JOIN ledger_balances b"
                    "  ON b.account_id = a.id AND b.shard = 0"
                    " WHERE a.program = ? AND a.owner IN (SELECT value FROM json_each(?))"
                    f" AND a.kind IN {CUSTOMER_KINDS_SQL}",
                    (program, json.dumps(owners)),
                ))
        for row in rows:
            ref = _new_tuple(AccountRef, row[1:4])
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
        programs, owners, kinds = zip(*missing, strict=True)  # columns, transposed in C
        shard_counts = ([HOT_SHARDS if kind in HOT_KINDS else 1 for kind in kinds] if self.pg
                        else [1] * len(kinds))
        signs = [ACCOUNT_SIGN[kind] for kind in kinds]
        if self.pg:
            created = self._rows(
                "INSERT INTO ledger_accounts (program, owner, kind, sign, shard_count,"
                " created_at) SELECT p, o, k, s, n, ? FROM unnest(?::text[], ?::text[],"
                " ?::text[], ?::smallint[], ?::smallint[]) AS t(p, o, k, s, n)"
                " ON CONFLICT (program, owner, kind) DO NOTHING"
                " RETURNING id, sign, shard_count, program, owner, kind",
                (now, _texts(programs), _texts(owners), _texts(kinds), _ints(signs),
                 _ints(shard_counts)),
            )
            for row in created:  # no second look-up for the accounts just created
                ids[_new_tuple(AccountRef, row[3:6])] = row[0]
            # shard 0 for an ordinary account, 1..n for a hot one (see the legs trigger)
            shard_rows = [(i, s, sign) for i, sign, n, *_ in created
                          for s in ((0,) if n == 1 else range(1, n + 1))]
            if shard_rows:
                self.conn.exec_driver_sql(
                    "INSERT INTO ledger_balances (account_id, shard, sign, balance)"
                    " SELECT a, s, g, 0 FROM unnest(%s::bigint[], %s::smallint[],"
                    " %s::smallint[]) AS t(a, s, g)",
                    (_ints(r[0] for r in shard_rows), _ints(r[1] for r in shard_rows),
                     _ints(r[2] for r in shard_rows)),
                )
        else:
            created_at = self.time(now)
            self._many(
                "INSERT INTO ledger_accounts (program, owner, kind, sign, shard_count,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(r.program, r.owner, r.kind, s, n, created_at)
                 for r, s, n in zip(missing, signs, shard_counts, strict=True)],
            )
        if self.pg:
            raced = [ref for ref in missing if ref not in ids]  # created meanwhile by others
            if raced:
                self._select_ids(raced, ids)
        else:
            self._select_ids(missing, ids)
            self._many(
                "INSERT INTO ledger_balances (account_id, shard, sign, balance)"
                " VALUES (?, 0, ?, 0) ON CONFLICT DO NOTHING",
                [(ids[r], ACCOUNT_SIGN[r.kind]) for r in missing],
            )
        lost = [ref for ref in missing if ref not in ids]
        if lost:  # pragma: no cover - would mean the unique key failed us
            raise RuntimeError(f"accounts not created: {lost}")

    def _select_ids(self, refs: Sequence[AccountRef], ids: dict[AccountRef, int]) -> None:
        if self.pg:
            rows = self._rows(
                "SELECT a.id, a.program, a.owner, a.kind FROM ledger_accounts a"
                " WHERE (a.program, a.owner, a.kind) IN"
                " (SELECT * FROM unnest(?::text[], ?::text[], ?::text[]))",
                (_texts([r.program for r in refs]), _texts([r.owner for r in refs]),
                 _texts([r.kind for r in refs])),
            )
        else:
            rows = self._rows(
                "SELECT a.id, a.program, a.owner, a.kind FROM ledger_accounts a"
                " JOIN json_each(?) j ON a.program = json_extract(j.value, '$[0]')"
                " AND a.owner = json_extract(j.value, '$[1]')"
                " AND a.kind = json_extract(j.value, '$[2]')",
                (json.dumps([[r.program, r.owner, r.kind] for r in refs]),),
            )
        for row in rows:
            ids[_new_tuple(AccountRef, row[1:])] = row[0]

    # --- writing ------------------------------------------------------------------------

    def write(self, drafts: Sequence[EntryDraft], ids: dict[AccountRef, int],
              now: datetime, *, optimistic: bool = False) -> None:
        """Insert the batch: one statement per table (PostgreSQL) in foreign-key order.

        ``optimistic`` (PostgreSQL): the keys were not looked up first. The entries go in with
        ``ON CONFLICT (idempotency_key) DO NOTHING`` before anything else, and if any key is
        taken :class:`KeyTaken` is raised with nothing else written, for the caller to roll
        back to its savepoint and take the looked-up path.
        """
        entry_rows: list[tuple[Any, ...]] = []
        leg_rows: list[tuple[Any, ...]] = []
        lot_rows: list[tuple[Any, ...]] = []
        move_rows = []
        lot_deltas: dict[int, int] = {}
        hold_rows = []
        resolution_rows = []
        add_entry, add_leg, add_lot = entry_rows.append, leg_rows.append, lot_rows.append
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
                add_lot((entry_id, ids[wallet], expires_at, amount))  # time: converted below
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
        if self.pg:
            self._write_pg(now, entry_rows, lot_rows, leg_rows, move_rows, lot_deltas,
                           hold_rows, resolution_rows, optimistic=optimistic)
        else:
            self._write_sqlite(now, entry_rows, lot_rows, leg_rows, move_rows, lot_deltas,
                               hold_rows, resolution_rows)

    def _write_pg(self, now: datetime, entry_rows: list[tuple[Any, ...]],
                  lot_rows: list[tuple[Any, ...]], leg_rows: list[tuple[Any, ...]],
                  move_rows: list[tuple[Any, ...]], lot_deltas: dict[int, int],
                  hold_rows: list[tuple[Any, ...]],
                  resolution_rows: list[tuple[Any, ...]], *, optimistic: bool) -> None:
        execute = self.conn.exec_driver_sql

        def col(rows: list[tuple[Any, ...]], i: int) -> list[Any]:
            return [row[i] for row in rows]

        ids_text: tuple[tuple[int, ...], str] = ((), "")  # the entry ids, formatted once

        def id_column(column: tuple[int, ...]) -> str:
            # An earnings batch repeats the entry ids in its legs and lots (one each)
            return ids_text[1] if column == ids_text[0] else _ints(column)

        if entry_rows:
            c = list(zip(*entry_rows, strict=True))  # columns (transposed in C)
            ids_text = (c[0], _ints(c[0]))
            inserted = execute(
                "INSERT INTO ledger_entries (id, idempotency_key, kind, status, request_hash,"
                " program, customer_id, amount, reject_code, reject_message, reason,"
                " reverses_entry_id, target_entry_id, created_at)"
                " SELECT i, k, t, s, h, p, c, a, rc, rm, r::json, rv, tg, %s FROM unnest("
                "%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[],"
                " %s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[],"
                " %s::bigint[]) AS x(i, k, t, s, h, p, c, a, rc, rm, r, rv, tg)"
                + (" ON CONFLICT (idempotency_key) DO NOTHING" if optimistic else ""),
                (now, ids_text[1], _texts(c[1]), _texts(c[2]), _texts(c[3]), _ints(c[4]),
                 _texts(c[5]), _texts(c[6]), _ints(c[7]), _texts(c[8]), _texts(c[9]),
                 _texts(c[10]), _ints(c[11]), _ints(c[12])),
            ).rowcount
            if optimistic and inserted != len(entry_rows):
                raise KeyTaken(f"{len(entry_rows) - inserted} keys exist")
        if lot_rows:
            c = list(zip(*lot_rows, strict=True))
            micros = _epoch_micros(c[2])
            if micros is not None:
                execute(
                    "INSERT INTO ledger_lots (entry_id, account_id, expires_at, amount,"
                    " remaining) SELECT e, a, " + EPOCH_MICROS_SQL.format("x") + ", m, m"
                    " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])"
                    " AS t(e, a, x, m)",
                    (id_column(c[0]), _ints(c[1]), micros, _ints(c[3])),
                )
            else:
                execute(
                    "INSERT INTO ledger_lots (entry_id, account_id, expires_at, amount,"
                    " remaining) SELECT e, a, x, m, m FROM unnest(%s::bigint[], %s::bigint[],"
                    " %s::timestamptz[], %s::bigint[]) AS t(e, a, x, m)",
                    (id_column(c[0]), _ints(c[1]), _times(c[2]), _ints(c[3])),
                )
        if leg_rows:
            c = list(zip(*leg_rows, strict=True))
            # The statement trigger turns these legs into one balance update per account.
            execute(
                "INSERT INTO ledger_legs (entry_id, leg_no, debit_account_id,"
                " credit_account_id, amount) SELECT * FROM unnest(%s::bigint[],"
                " %s::smallint[], %s::bigint[], %s::bigint[], %s::bigint[])",
                (id_column(c[0]), *map(_ints, c[1:])),
            )
        if move_rows:
            execute(
                "INSERT INTO ledger_lot_moves (entry_id, lot_id, delta)"
                " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])",
                tuple(map(_ints, zip(*move_rows, strict=True))),
            )
        changed = sorted((lot, delta) for lot, delta in lot_deltas.items() if delta)
        if changed:
            execute(
                "UPDATE ledger_lots l SET remaining = l.remaining + d.delta"
                " FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta)"
                " WHERE l.entry_id = d.id",
                (_ints(c[0] for c in changed), _ints(c[1] for c in changed)),
            )
        if hold_rows:
            execute(
                "INSERT INTO ledger_holds (entry_id, wallet_account_id, held_account_id,"
                " destination_account_id, amount, timeout_at) SELECT * FROM unnest("
                "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],"
                " %s::timestamptz[])",
                (*(_ints(col(hold_rows, i)) for i in range(5)), _times(col(hold_rows, 5))),
            )
        if resolution_rows:
            r = resolution_rows
            execute(
                "INSERT INTO ledger_hold_resolutions (hold_entry_id, entry_id, outcome, posted)"
                " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[])",
                (_ints(col(r, 0)), _ints(col(r, 1)), _texts(col(r, 2)), _ints(col(r, 3))),
            )

    def _write_sqlite(self, now: datetime, entry_rows: list[tuple[Any, ...]],
                      lot_rows: list[tuple[Any, ...]], leg_rows: list[tuple[Any, ...]],
                      move_rows: list[tuple[Any, ...]], lot_deltas: dict[int, int],
                      hold_rows: list[tuple[Any, ...]],
                      resolution_rows: list[tuple[Any, ...]]) -> None:
        created_at = self.time(now)
        self._many(
            "INSERT INTO ledger_entries (id, idempotency_key, kind, status, request_hash,"
            " program, customer_id, amount, reject_code, reject_message, reason,"
            " reverses_entry_id, target_entry_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row, created_at) for row in entry_rows],
        )
        times: dict[datetime, Any] = {}  # batches share a few expiry dates: convert each once
        for row in lot_rows:
            if row[2] not in times:
                times[row[2]] = self.time(row[2])
        self._many(
            "INSERT INTO ledger_lots (entry_id, account_id, expires_at, amount, remaining)"
            " VALUES (?, ?, ?, ?, ?)",
            [(e, a, times[x], m, m) for e, a, x, m in lot_rows],
        )
        # In draft order: the row trigger applies each leg, so every intermediate balance is
        # one the engine already checked.
        self._many(
            "INSERT INTO ledger_legs (entry_id, leg_no, debit_account_id, credit_account_id,"
            " amount) VALUES (?, ?, ?, ?, ?)",
            leg_rows,
        )
        self._many("INSERT INTO ledger_lot_moves (entry_id, lot_id, delta) VALUES (?, ?, ?)",
                   move_rows)
        self._many(
            "UPDATE ledger_lots SET remaining = remaining + ? WHERE entry_id = ?",
            [(delta, lot) for lot, delta in sorted(lot_deltas.items()) if delta],
        )
        self._many(
            "INSERT INTO ledger_holds (entry_id, wallet_account_id, held_account_id,"
            " destination_account_id, amount, timeout_at) VALUES (?, ?, ?, ?, ?, ?)",
            hold_rows,
        )
        self._many(
            "INSERT INTO ledger_hold_resolutions (hold_entry_id, entry_id, outcome, posted)"
            " VALUES (?, ?, ?, ?)",
            resolution_rows,
        )

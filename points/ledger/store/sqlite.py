"""The ledger store on SQLite: ``executemany`` and ``json_each`` lists.

SQLite has one writer at a time and runs in-process, so there are no round trips to save and
no row locks to take: the batch takes the database's write lock first (:meth:`hold_write_lock`)
and then reads and writes plainly. Times are stored as UTC text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from points.ledger.model import ACCOUNT_SIGN, AccountRef
from points.ledger.store.base import CUSTOMER_KINDS_SQL, BatchRows, Store, new_tuple

__all__ = ["SqliteStore"]


class SqliteStore(Store):
    """The batch path on SQLite."""

    optimistic_writes: ClassVar[bool] = False

    def hold_write_lock(self) -> None:
        """Take the database's write lock before the batch reads anything.

        Python's sqlite3 driver runs SELECTs outside a transaction until the first write, so
        the batch's reads (next entry id, balances, lots) could see a state another process
        is about to change, and two processes then chose the same entry ids (seen in the
        demo: the earning worker, the partner worker and the API share one SQLite file). A
        no-op write first makes the driver BEGIN and SQLite grant the write lock (waiting up
        to busy_timeout), so every read of the batch is under it.
        """
        self.conn.exec_driver_sql("UPDATE ledger_accounts SET id = id WHERE id = -1")

    def _sql(self, sql: str) -> str:
        return sql

    def _in(self, column: str, cast_to: str) -> str:
        return f"{column} IN (SELECT value FROM json_each(?))"

    def _list(self, values: Iterable[Any]) -> Any:
        return json.dumps(list(values))

    def time(self, value: datetime) -> Any:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def allocate_ids(self, count: int) -> list[int]:
        if count == 0:
            return []
        # SQLite has one writer; a concurrent one makes this transaction fail, not collide.
        top = self._rows("SELECT coalesce(max(id), 0) FROM ledger_entries")[0][0]
        return list(range(top + 1, top + 1 + count))

    def _customer_rows(self, locked: list[tuple[str, str]],
                       unlocked: list[tuple[str, str]]) -> list[Any]:
        # One writer at a time, no row locks: read everyone's balances.
        by_program: dict[str, list[str]] = {}
        for program, owner in (*locked, *unlocked):
            by_program.setdefault(program, []).append(owner)
        rows: list[Any] = []
        for program, owners in by_program.items():
            rows.extend(self._rows(
                "SELECT b.account_id, a.program, a.owner, a.kind, b.balance"
                " FROM ledger_accounts a JOIN ledger_balances b"
                "  ON b.account_id = a.id AND b.shard = 0"
                " WHERE a.program = ? AND a.owner IN (SELECT value FROM json_each(?))"
                f" AND a.kind IN {CUSTOMER_KINDS_SQL}",
                (program, json.dumps(owners)),
            ))
        return rows

    def _select_ids(self, refs: Sequence[AccountRef], ids: dict[AccountRef, int]) -> None:
        rows = self._rows(
            "SELECT a.id, a.program, a.owner, a.kind FROM ledger_accounts a"
            " JOIN json_each(?) j ON a.program = json_extract(j.value, '$[0]')"
            " AND a.owner = json_extract(j.value, '$[1]')"
            " AND a.kind = json_extract(j.value, '$[2]')",
            (json.dumps([[r.program, r.owner, r.kind] for r in refs]),),
        )
        for row in rows:
            ids[new_tuple(AccountRef, row[1:])] = row[0]

    def _create_accounts(self, missing: Sequence[AccountRef], ids: dict[AccountRef, int],
                         now: datetime) -> None:
        created_at = self.time(now)
        # one balance row (shard 0) per account: one writer at a time, nothing to spread
        self._many(
            "INSERT INTO ledger_accounts (program, owner, kind, sign, shard_count,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(r.program, r.owner, r.kind, ACCOUNT_SIGN[r.kind], 1, created_at)
             for r in missing],
        )
        self._select_ids(missing, ids)
        self._many(
            "INSERT INTO ledger_balances (account_id, shard, sign, balance)"
            " VALUES (?, 0, ?, 0) ON CONFLICT DO NOTHING",
            [(ids[r], ACCOUNT_SIGN[r.kind]) for r in missing],
        )

    def _insert(self, now: datetime, rows: BatchRows, *, optimistic: bool) -> None:
        # ``optimistic`` is never asked of SQLite (optimistic_writes is False)
        created_at = self.time(now)
        self._many(
            "INSERT INTO ledger_entries (id, idempotency_key, kind, status, request_hash,"
            " program, customer_id, amount, reject_code, reject_message, reason,"
            " reverses_entry_id, target_entry_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row, created_at) for row in rows.entries],
        )
        times: dict[datetime, Any] = {}  # batches share a few expiry dates: convert each once
        for row in rows.lots:
            if row[2] not in times:
                times[row[2]] = self.time(row[2])
        self._many(
            "INSERT INTO ledger_lots (entry_id, account_id, expires_at, amount, remaining)"
            " VALUES (?, ?, ?, ?, ?)",
            [(e, a, times[x], m, m) for e, a, x, m in rows.lots],
        )
        # In draft order: the row trigger applies each leg, so every intermediate balance is
        # one the engine already checked.
        self._many(
            "INSERT INTO ledger_legs (entry_id, leg_no, debit_account_id, credit_account_id,"
            " amount) VALUES (?, ?, ?, ?, ?)",
            rows.legs,
        )
        self._many("INSERT INTO ledger_lot_moves (entry_id, lot_id, delta) VALUES (?, ?, ?)",
                   rows.moves)
        self._many(
            "UPDATE ledger_lots SET remaining = remaining + ? WHERE entry_id = ?",
            [(delta, lot) for lot, delta in sorted(rows.lot_deltas.items()) if delta],
        )
        self._many(
            "INSERT INTO ledger_holds (entry_id, wallet_account_id, held_account_id,"
            " destination_account_id, amount, timeout_at) VALUES (?, ?, ?, ?, ?, ?)",
            rows.holds,
        )
        self._many(
            "INSERT INTO ledger_hold_resolutions (hold_entry_id, entry_id, outcome, posted)"
            " VALUES (?, ?, ?, ?)",
            rows.resolutions,
        )

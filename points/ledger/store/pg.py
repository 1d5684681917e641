"""The ledger store on PostgreSQL: array parameters, one statement per table per batch.

Lists travel as one array literal each (``unnest``/``ANY``, built in Python by
``points.pgarrays``: psycopg adapting them element by element cost more than the statements),
debtors are locked with ``FOR UPDATE`` in account-id order, hot accounts get :data:`HOT_SHARDS`
balance rows, and large batches may write optimistically (see :meth:`Store.write`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

from points.ledger.model import ACCOUNT_SIGN, HOT_KINDS, AccountRef
from points.ledger.store.base import (
    CUSTOMER_KINDS_SQL,
    BatchRows,
    KeyTaken,
    Row,
    Store,
    new_tuple,
)
from points.pgarrays import int_array_literal as _ints
from points.pgarrays import text_array_literal as _texts

__all__ = ["EPOCH_MICROS_SQL", "HOT_SHARDS", "PgStore"]

HOT_SHARDS: Final = 8
"""Balance rows per hot account on PostgreSQL: concurrent writers each take a free one."""


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


def _col(rows: list[Row], i: int) -> list[Any]:
    return [row[i] for row in rows]


class PgStore(Store):
    """The batch path on PostgreSQL."""

    optimistic_writes: ClassVar[bool] = True

    def hold_write_lock(self) -> None:
        """Nothing to do: PostgreSQL locks rows instead (FOR UPDATE, sequences)."""

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _in(self, column: str, cast_to: str) -> str:
        return f"{column} = ANY(?::{cast_to}[])"

    def _list(self, values: Iterable[Any]) -> Any:
        values = list(values)
        if values and isinstance(values[0], str):
            return _texts(values)
        return _ints(values)

    def time(self, value: datetime) -> Any:
        return value

    def allocate_ids(self, count: int) -> list[int]:
        if count == 0:
            return []
        # one text value, not 1,000 rows: fetching rows one by one cost 3 ms a batch
        (joined,) = self._rows(
            "SELECT string_agg(nextval('ledger_entries_id_seq')::text, ',')"
            " FROM generate_series(1, ?)", (count,)
        )[0]
        return list(map(int, joined.split(",")))

    def _customer_rows(self, locked: list[tuple[str, str]],
                       unlocked: list[tuple[str, str]]) -> list[Any]:
        rows: list[Any] = []
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
        return rows

    def _select_ids(self, refs: Sequence[AccountRef], ids: dict[AccountRef, int]) -> None:
        rows = self._rows(
            "SELECT a.id, a.program, a.owner, a.kind FROM ledger_accounts a"
            " WHERE (a.program, a.owner, a.kind) IN"
            " (SELECT * FROM unnest(?::text[], ?::text[], ?::text[]))",
            (_texts([r.program for r in refs]), _texts([r.owner for r in refs]),
             _texts([r.kind for r in refs])),
        )
        for row in rows:
            ids[new_tuple(AccountRef, row[1:])] = row[0]

    def _create_accounts(self, missing: Sequence[AccountRef], ids: dict[AccountRef, int],
                         now: datetime) -> None:
        programs, owners, kinds = zip(*missing, strict=True)  # columns, transposed in C
        shard_counts = [HOT_SHARDS if kind in HOT_KINDS else 1 for kind in kinds]
        signs = [ACCOUNT_SIGN[kind] for kind in kinds]
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
            ids[new_tuple(AccountRef, row[3:6])] = row[0]
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
        raced = [ref for ref in missing if ref not in ids]  # created meanwhile by others
        if raced:
            self._select_ids(raced, ids)

    def _insert(self, now: datetime, rows: BatchRows, *, optimistic: bool) -> None:
        execute = self.conn.exec_driver_sql
        entry_rows, lot_rows, leg_rows = rows.entries, rows.lots, rows.legs
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
        if rows.moves:
            execute(
                "INSERT INTO ledger_lot_moves (entry_id, lot_id, delta)"
                " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])",
                tuple(map(_ints, zip(*rows.moves, strict=True))),
            )
        changed = sorted((lot, delta) for lot, delta in rows.lot_deltas.items() if delta)
        if changed:
            execute(
                "UPDATE ledger_lots l SET remaining = l.remaining + d.delta"
                " FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, delta)"
                " WHERE l.entry_id = d.id",
                (_ints(c[0] for c in changed), _ints(c[1] for c in changed)),
            )
        if rows.holds:
            h = rows.holds
            execute(
                "INSERT INTO ledger_holds (entry_id, wallet_account_id, held_account_id,"
                " destination_account_id, amount, timeout_at) SELECT * FROM unnest("
                "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],"
                " %s::timestamptz[])",
                (*(_ints(_col(h, i)) for i in range(5)), _times(_col(h, 5))),
            )
        if rows.resolutions:
            r = rows.resolutions
            execute(
                "INSERT INTO ledger_hold_resolutions (hold_entry_id, entry_id, outcome, posted)"
                " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::bigint[])",
                (_ints(_col(r, 0)), _ints(_col(r, 1)), _texts(_col(r, 2)), _ints(_col(r, 3))),
            )

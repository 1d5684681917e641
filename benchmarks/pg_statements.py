"""Where PostgreSQL's time goes, per statement, from pg_stat_statements.

The devstack loads the extension (``shared_preload_libraries``) and installs it in the schema
``pgstats`` of each database (devstack/postgres.py). A bench resets the counters when its
measured run starts and reads them when it ends; statements are grouped by what they do to
which table (``INSERT ledger_legs``, ``COPY inbound_events``, ``COMMIT`` …) and reported in
microseconds of execution per event. Execution time is not CPU time (a COMMIT waits for the
WAL flush), but on a database that is CPU-bound it is close, and it says which statement to cut.
"""

from __future__ import annotations

import re
from collections import defaultdict

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

SCHEMA = "pgstats"
# Put in the text of a bench's own statements (its progress polls): left out of the figures.
BENCH_MARKER = "/* bench */"
_TABLE = r'"?([a-z_][a-z0-9_]*)"?'
_SHAPES = (
    (re.compile(rf"^\s*insert\s+into\s+{_TABLE}", re.I), "INSERT"),
    (re.compile(rf"^\s*update\s+{_TABLE}", re.I), "UPDATE"),
    (re.compile(rf"^\s*delete\s+from\s+{_TABLE}", re.I), "DELETE"),
    (re.compile(rf"^\s*copy\s+{_TABLE}", re.I), "COPY"),
    (re.compile(rf"^\s*with\b.*?\binsert\s+into\s+{_TABLE}", re.I | re.S), "WITH INSERT"),
    (re.compile(rf"^\s*with\b.*?\bupdate\s+{_TABLE}", re.I | re.S), "WITH UPDATE"),
    (re.compile(rf"^\s*(?:with|select)\b.*?\bfrom\s+{_TABLE}", re.I | re.S), "SELECT"),
)


def label(query: str) -> str:
    """What a statement does to which table: ``INSERT ledger_legs``; else its first word."""
    for pattern, verb in _SHAPES:
        found = pattern.search(query)
        if found:
            return f"{verb} {found.group(1)}"
    words = query.split()
    return words[0].upper() if words else "?"


def available(engine: Engine) -> bool:
    """True when the extension is loaded and installed (a stack started before the devstack
    loaded it must be restarted: ``make stack-down stack-up``)."""
    try:
        with engine.connect() as conn:
            conn.execute(text(f"SELECT 1 FROM {SCHEMA}.pg_stat_statements LIMIT 1"))
    except DBAPIError:
        return False
    return True


def reset(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text(f"SELECT {SCHEMA}.pg_stat_statements_reset(0, 0, 0)"))
        conn.commit()


def _ours(query: str) -> bool:
    """False for the bench's own statements: its reads of these statistics, its polls."""
    return SCHEMA not in query and BENCH_MARKER not in query


def calls_and_rows(engine: Engine, statement: str) -> tuple[int, int]:
    """How many times statements of one group (``COPY inbound_events``) ran in this database
    since the last reset, and how many rows they returned or wrote."""
    with engine.connect() as conn:
        found = conn.execute(text(
            f"SELECT query, calls, rows FROM {SCHEMA}.pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )).all()  # fmt: skip
    matching = [
        (int(c), int(r)) for query, c, r in found if label(query) == statement and _ours(query)
    ]
    return sum(c for c, _ in matching), sum(r for _, r in matching)


def per_event_us(engine: Engine, events: int, *, top: int = 12) -> dict[str, float]:
    """Execution µs per event by statement group, the ``top`` largest, most first, and
    ``other`` for the rest; only this database's statements."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT query, total_exec_time FROM {SCHEMA}.pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )).all()  # fmt: skip
    totals: dict[str, float] = defaultdict(float)
    for query, total_ms in rows:
        if not _ours(query):
            continue
        totals[label(query)] += total_ms * 1000 / events
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    result = {name: round(us, 1) for name, us in ranked[:top]}
    if ranked[top:]:
        result["other"] = round(sum(us for _, us in ranked[top:]), 1)
    return result

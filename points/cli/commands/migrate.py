"""``migrate [--revision head]``: bring the database schema to a revision (Alembic)."""

from __future__ import annotations

from typing import Annotated

import typer
from alembic.runtime.migration import MigrationContext

from points.cli.context import ops_of
from points.migrate import upgrade


def command(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
) -> None:
    """Upgrade the database schema."""
    ops = ops_of(ctx)
    with ops.read() as conn:
        before = MigrationContext.configure(conn).get_current_revision()
    upgrade(ops.database_url, revision)
    with ops.read() as conn:
        after = MigrationContext.configure(conn).get_current_revision()
    ops.output.emit(
        {"from_revision": before, "revision": after},
        f"database at revision {after}" + ("" if before == after else f" (was {before})"),
    )

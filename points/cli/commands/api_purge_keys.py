"""``api purge-idempotency-keys [--older-than-hours H] [--chunk-size N] [--dry-run]``.

Deletes the customer API's stored Idempotency-Key responses created more than the retention
ago (``POINTS_API__IDEMPOTENCY__RETENTION_HOURS``, default 72 h; ``--older-than-hours``
overrides it). The dry run only counts them. The real run deletes oldest first, at most
``--chunk-size`` keys per transaction, so it never holds many row locks for long and can be
interrupted and run again at any time. The API process purges the same way in the
background; this command is for cron, or for a deployment that turns that off.
"""

from __future__ import annotations

from typing import Annotated

import typer

from points.api.idempotency import PURGE_CHUNK, count_expired, purge_chunk, retention_cutoff
from points.api.settings import load_idempotency_settings
from points.cli.context import ops_of

HOURS_MAX = 24 * 366
CHUNK_MAX = 10_000


def command(
    ctx: typer.Context,
    older_than_hours: Annotated[
        int | None,
        typer.Option(
            "--older-than-hours",
            min=1,
            max=HOURS_MAX,
            help="Delete keys created more than this many hours ago (default: "
            "POINTS_API__IDEMPOTENCY__RETENTION_HOURS, 72).",
            show_default=False,
        ),
    ] = None,
    chunk_size: Annotated[
        int,
        typer.Option("--chunk-size", min=1, max=CHUNK_MAX, help="Keys deleted per transaction."),
    ] = PURGE_CHUNK,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Count the keys that would be deleted; delete nothing."),
    ] = False,
) -> None:
    """Delete the customer API's stored Idempotency-Key responses past their retention."""
    ops = ops_of(ctx)
    hours = older_than_hours or load_idempotency_settings().retention_hours
    cutoff = retention_cutoff(ops.now(), hours)
    with ops.read() as conn:
        expired = count_expired(conn, cutoff)
    summary = {"retention_hours": hours, "cutoff": cutoff, "dry_run": dry_run, "expired": expired}
    if dry_run:
        ops.output.emit(
            summary,
            f"{expired} stored idempotency key{'s' if expired != 1 else ''} created before "
            f"{cutoff.isoformat(timespec='seconds')} would be deleted (dry run); "
            "nothing was deleted",
        )
        return
    deleted = chunks = 0
    with ops.output.progress("purging idempotency keys", expired) as progress:
        while True:
            with ops.engine().begin() as conn:
                done = purge_chunk(conn, cutoff, chunk_size)
            chunks += 1
            deleted += done
            progress.advance(done)
            if done < chunk_size:
                break
    ops.output.emit(
        {**summary, "deleted": deleted, "chunks": chunks, "chunk_size": chunk_size},
        f"deleted {deleted} stored idempotency key{'s' if deleted != 1 else ''} created "
        f"before {cutoff.isoformat(timespec='seconds')} in {chunks} "
        f"chunk{'s' if chunks != 1 else ''} of at most {chunk_size}",
    )

"""``dlq replay ID... | --reason CODE [--dry-run] --operator``: send dead letters back.

Each letter's original bytes (and key) are queued in the outbox for its source topic, with
the dedupe key ``dlq-replay:<id>``: one outbox row per letter however often it is asked for.
The headers record who replayed it and when. The outbox relay publishes them and the stream
worker validates them again like any other message: fix what rejected them first (the
producer, the contract, the worker version), or they come back to the DLQ.

Partner messages are refused: they are HMAC-signed in Kafka headers that ``dead_letters``
does not keep (and the signature's replay window has passed), so a replay could only be
rejected again as ``unsigned``. The partner must send them again. Letters whose event the
intake had accepted (refused later by the rules, e.g. ``refund_mismatch``) are skipped: their
event id is in the inbox, so the worker would drop a replay as a duplicate; correct those with
``adjust`` or ``reverse``.
"""

from __future__ import annotations

from typing import Annotated, Final

import typer

from points.cli.commands.dlq_list import letters_table
from points.cli.context import ops_of, require_operator
from points.cli.errors import BadInput, NotFound
from points.cli.options import OptionalOperator
from points.cli.store import (
    already_accepted,
    dead_letters_by_ids,
    list_dead_letters,
    queue_replays,
)

CHUNK_SIZE: Final = 500  # letters per transaction
SIGNED_TOPIC_PREFIX: Final = "partner."  # partner.<id>.events: signatures live in headers


def command(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(
        help="Dead letter ids (see `dlq list`).", show_default=False)] = None,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Replay every letter with this reason code instead of ids.",
        show_default=False)] = None,
    topic: Annotated[str | None, typer.Option(
        "--topic", help="With --reason: only letters from this source topic.",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option(
        "--limit", min=1, max=1_000_000,
        help="With --reason: at most this many letters, oldest first.")] = 10_000,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be replayed; write nothing.")] = False,
    operator: OptionalOperator = None,
) -> None:
    """Replay dead letters to their source topics through the outbox."""
    ops = ops_of(ctx)
    if bool(ids) == (reason is not None):
        raise BadInput("give dead letter ids or --reason CODE (one of the two)")
    if topic is not None and reason is None:
        raise BadInput("--topic narrows --reason; with ids it is not needed")
    who = None if dry_run else require_operator(operator)
    with ops.read() as conn:
        if ids:
            letters = dead_letters_by_ids(conn, ids)
            missing = sorted(set(ids) - {d.id for d in letters})
            if missing:
                raise NotFound(f"no dead letter with id {', '.join(map(str, missing))}")
        else:
            letters = list_dead_letters(conn, reason_code=reason, topic=topic, limit=limit)
        signed = [d.id for d in letters if d.topic.startswith(SIGNED_TOPIC_PREFIX)]
        if signed:
            raise BadInput(
                f"letters {', '.join(map(str, signed[:20]))}"
                f"{' ...' if len(signed) > 20 else ''} are signed partner messages whose "
                "signature headers were not kept; ask the partner to send them again "
                "(or narrow the selection with --topic)")
        accepted = already_accepted(conn, letters)
    skipped = sorted(accepted)
    letters = [d for d in letters if d.id not in accepted]
    skip_note = (f"; skipped {len(skipped)} whose events were accepted before (a replay "
                 f"would be dropped as a duplicate): {', '.join(map(str, skipped[:20]))}"
                 if skipped else "")
    if dry_run:
        ops.output.emit(
            {"dry_run": True, "dead_letters": [d.to_json() for d in letters],
             "skipped_already_accepted": skipped},
            letters_table("Would replay (dry run)", letters),
            f"{len(letters)} letters; "
            f"{sum(1 for d in letters if d.replayed_by)} were replayed before; nothing was written"
            + skip_note,
        )
        return
    assert who is not None
    queued: set[int] = set()
    with ops.output.progress("queueing replays", len(letters)) as progress:
        for start in range(0, len(letters), CHUNK_SIZE):
            chunk = letters[start:start + CHUNK_SIZE]
            with ops.engine().begin() as conn:
                queued |= queue_replays(conn, chunk, operator=who, now=ops.now())
            progress.advance(len(chunk))
    already = [d.id for d in letters if d.id not in queued]
    ops.output.emit(
        {"queued": sorted(queued), "already_queued": already, "operator": who,
         "skipped_already_accepted": skipped},
        f"queued {len(queued)} letter{'s' if len(queued) != 1 else ''} for replay"
        + (f"; {len(already)} were queued before (not again)" if already else "")
        + skip_note,
    )

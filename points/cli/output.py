"""How commands speak: Rich tables for people, JSON (``--json``) for machines, progress on
stderr, errors as one line on stderr.

Consoles are built per invocation (never at import) so that they write to whatever
``sys.stdout`` is at the time: a terminal, a pipe or the test runner's buffer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from points.ledger import Reason

__all__ = [
    "Output",
    "ProgressTask",
    "fmt_points",
    "fmt_signed",
    "fmt_time",
    "jsonable",
    "key_values",
    "reason_text",
    "table",
]

# Not a terminal (a pipe, a log file, a test): wide enough that keys and ids never fold.
_PIPE_WIDTH = 200


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=_PIPE_WIDTH, no_color=True)
    return console


@dataclass
class Output:
    json_mode: bool
    out: Console = field(default_factory=lambda: _console(stderr=False))
    err: Console = field(default_factory=lambda: _console(stderr=True))

    def emit(self, data: Mapping[str, Any] | Sequence[Any], *renderables: Any) -> None:
        """Print ``data`` as JSON in ``--json`` mode, otherwise the renderables for people."""
        if self.json_mode:
            self.out.file.write(json.dumps(jsonable(data), indent=2, sort_keys=True) + "\n")
            return
        for renderable in renderables:
            self.say(renderable)

    def say(self, renderable: Any) -> None:
        if isinstance(renderable, str):
            renderable = Text(renderable)
        self.out.print(renderable)

    def note(self, message: str) -> None:
        """A remark for people (stderr), never mixed into JSON output."""
        self.err.print(Text(message))

    def error(self, message: str) -> None:
        self.err.print(Text(f"error: {message}"), soft_wrap=True)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[ProgressTask]:
        """A progress bar on stderr (a spinner when the total is unknown); gone when done."""
        columns = (
            [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
            if total is None
            else [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()]
        )
        progress = Progress(*columns, console=self.err, transient=True,
                            disable=self.json_mode or not self.err.is_terminal)
        with progress:
            task = progress.add_task(description, total=total)
            yield ProgressTask(progress, task)


@dataclass
class ProgressTask:
    progress: Progress
    task: Any

    def advance(self, amount: int = 1) -> None:
        self.progress.advance(self.task, amount)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]],
          *, numeric: Sequence[str] = ()) -> Table:
    """A Rich table whose cells are plain text (no markup: ids may contain brackets)."""
    result = Table(title=title, title_justify="left")
    for name in columns:
        result.add_column(name, justify="right" if name in numeric else "left",
                          overflow="fold")
    for row in rows:
        result.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    if not rows:
        result.caption = "(none)"
    return result


def key_values(title: str | None, pairs: Sequence[tuple[str, object]]) -> Table:
    result = Table(title=title, title_justify="left", show_header=False)
    result.add_column("field", style="bold")
    result.add_column("value", overflow="fold")
    for name, value in pairs:
        result.add_row(Text(name), Text("" if value is None else str(value)))
    return result


def fmt_points(value: int) -> str:
    return f"{value:,}"


def fmt_signed(value: int) -> str:
    if value == 0:
        return ""
    return f"+{value:,}" if value > 0 else f"{value:,}"


def fmt_time(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="seconds")


def reason_text(reason: Reason) -> str:
    """A reason in one line: rules (ruleset), campaign, source event, operator, note."""
    parts: list[str] = []
    if reason.rule_ids:
        rules = ", ".join(reason.rule_ids)
        parts.append(f"rules {rules}" + (f" ({reason.ruleset_version})"
                                         if reason.ruleset_version else ""))
    elif reason.ruleset_version:
        parts.append(f"ruleset {reason.ruleset_version}")
    if reason.campaign:
        parts.append(f"campaign {reason.campaign}")
    if reason.source_event:
        parts.append(f"event {reason.source_event}")
    if reason.operator:
        parts.append(f"by {reason.operator}")
    if reason.note:
        parts.append(f"“{reason.note}”")
    return "; ".join(parts)


def jsonable(value: Any) -> Any:
    """Plain JSON values: datetimes as ISO 8601, tuples as lists, bytes as text or hex."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    return value

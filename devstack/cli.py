"""``python -m devstack up|down|status|env``: the local Kafka + PostgreSQL stack.

Exit codes: 0 ok, 1 a failure with a one-line message (StackError), 2 usage (bad option or
malformed POINTS_STACK_* variable).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from devstack import kafka, postgres, process
from devstack.errors import StackError, UsageError
from devstack.paths import StackConfig, load_config, pg_url

app = typer.Typer(
    name="points-stack",
    help="Local Apache Kafka broker + PostgreSQL cluster for points-exchange dev and tests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)  # one line per message: logs and grep stay readable
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


class Service(StrEnum):
    kafka = "kafka"
    postgres = "postgres"


OnlyOption = Annotated[
    Service | None, typer.Option("--only", help="Act on one service only.", case_sensitive=False)
]


def _guard(action: Callable[[], T]) -> T:
    """Turn our errors into a message and the documented exit code instead of a traceback."""
    try:
        return action()
    except UsageError as exc:
        err.print(f"[red]usage error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    except StackError as exc:
        # escape(): log tails quoted in messages contain [brackets] Rich would read as markup.
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


def _config() -> StackConfig:
    return _guard(load_config)


def _services(only: Service | None) -> list[Service]:
    return [only] if only else [Service.kafka, Service.postgres]


def render_env(config: StackConfig) -> str:
    """Shell `export` lines for the stack, for `eval "$(python -m devstack env)"`."""
    values = {
        "POINTS_KAFKA__BOOTSTRAP_SERVERS": config.kafka_bootstrap,
        "POINTS_TEST_DATABASE_URL": pg_url(config.pg_port, postgres.DATABASES[1]),
        "POINTS_STACK_PG_URL": pg_url(config.pg_port, postgres.DATABASES[0]),
        # Benchmarks reset their own database, never the demo's or the tests'.
        "POINTS_BENCH_PG_URL": pg_url(config.pg_port, postgres.DATABASES[2]),
    }
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in values.items()) + "\n"


@app.command()
def up(only: OnlyOption = None) -> None:
    """Start the stack (idempotent: services of ours that already run are reused)."""
    config = _config()

    def run() -> None:
        with process.locked(config.lock_file):
            for service in _services(only):
                if service is Service.kafka:
                    kst, started = kafka.start(config)
                    process.update_state(config.state_file, "kafka", kafka.state_entry(config, kst))
                    verb = "started" if started else "already running"
                    out.print(
                        f"kafka: {verb} pid {kst.pid} on {kst.address} (version {kst.version})"
                    )
                else:
                    pst, started = postgres.start(config)
                    process.update_state(
                        config.state_file, "postgres", postgres.state_entry(config, pst)
                    )
                    verb = "started" if started else "already running"
                    out.print(f"postgres: {verb} pid {pst.pid} on {pst.address} "
                              f"(version {pst.version}, data {config.pg_data_dir})")  # fmt: skip

    _guard(run)


@app.command()
def down(only: OnlyOption = None) -> None:
    """Stop the processes this stack started (by PID; nothing else is touched)."""
    config = _config()

    def run() -> None:
        with process.locked(config.lock_file):
            for service in _services(only):
                module = kafka if service is Service.kafka else postgres
                out.print(module.stop(config))
                process.update_state(config.state_file, service.value, None)

    _guard(run)


def collect_status(config: StackConfig) -> dict[str, dict[str, Any]]:
    kst = kafka.status(config)
    pst = postgres.status(config)
    return {
        "kafka": {
            "state": kst.state, "pid": kst.pid, "address": kst.address, "version": kst.version,
            "version_source": "broker log line 'Kafka version: X' of the running pid",
            "metadata_version": kst.metadata_version, "detail": kst.detail,
        },
        "postgres": {
            "state": pst.state, "pid": pst.pid, "address": pst.address, "version": pst.version,
            "version_source": "SHOW server_version", "detail": pst.detail,
            "url": pg_url(config.pg_port, postgres.DATABASES[0]),
            "test_url": pg_url(config.pg_port, postgres.DATABASES[1]),
        },
    }  # fmt: skip


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each service's state, pid, address and the version the running server reports."""
    config = _config()
    report = _guard(lambda: collect_status(config))
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    table = Table(title=f"points-exchange stack ({config.state_dir})")
    for column in ("service", "state", "pid", "address", "version"):
        table.add_column(column)
    colours = {"running": "green", "unresponsive": "yellow", "stopped": "red"}
    for name, row in report.items():
        state = row["state"] + (f" ({row['detail']})" if row["detail"] else "")
        version = row["version"] or "-"
        if row.get("metadata_version") is not None:
            version += f" (metadata.version {row['metadata_version']})"
        table.add_row(
            name, f"[{colours.get(row['state'], 'white')}]{state}[/]",
            str(row["pid"] or "-"), row["address"], version,
        )  # fmt: skip
    out.print(table)


@app.command()
def env() -> None:
    """Print `export` lines: eval "$(python -m devstack env)"."""
    sys.stdout.write(render_env(_config()))


def main() -> None:
    app()

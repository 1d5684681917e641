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

from devstack import kafka, kafka_security, postgres, process
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


def render_env(config: StackConfig, user: str | None = None) -> str:
    """Shell `export` lines for the stack, for `eval "$(python -m devstack env)"`.

    On a secured stack also the product's own connection settings for ``user`` (default: the
    devstack admin): POINTS_KAFKA__SECURITY_PROTOCOL, __SASL_MECHANISM, __SASL_USERNAME,
    __SASL_PASSWORD_FILE and __SSL_CAFILE, which every process of the exchange reads.
    """
    layout = kafka.saved_layout(config)
    values = {
        "POINTS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap(config, layout),
        "POINTS_TEST_DATABASE_URL": pg_url(config.pg_port, postgres.DATABASES[1]),
        "POINTS_STACK_PG_URL": pg_url(config.pg_port, postgres.DATABASES[0]),
        # Benchmarks reset their own database, never the demo's or the tests'.
        "POINTS_BENCH_PG_URL": pg_url(config.pg_port, postgres.DATABASES[2]),
    }
    if layout.secure:
        settings = kafka.client_config(config, layout, user or kafka_security.ADMIN)
        values |= {
            "POINTS_KAFKA__SECURITY_PROTOCOL": settings["security.protocol"],
            "POINTS_KAFKA__SASL_MECHANISM": settings["sasl.mechanism"],
            "POINTS_KAFKA__SASL_USERNAME": settings["sasl.username"],
            "POINTS_KAFKA__SASL_PASSWORD_FILE": str(
                kafka_security.password_file(kafka.secrets_dir(config), settings["sasl.username"])
            ),
            "POINTS_KAFKA__SSL_CAFILE": settings["ssl.ca.location"],
        }
    elif user is not None:
        raise StackError("--user needs a secured stack (`up --secure`)")
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in values.items()) + "\n"


BrokersOption = Annotated[
    int | None,
    typer.Option("--brokers", help="Kafka nodes: 1 (default) or 3 (RF 3, min.insync.replicas 2)."),
]
SecureOption = Annotated[
    bool,
    typer.Option("--secure", help="SASL_SSL (SCRAM-SHA-512), a throwaway CA, ACLs per principal."),
]


@app.command()
def up(
    only: OnlyOption = None, brokers: BrokersOption = None, secure: SecureOption = False
) -> None:
    """Start the stack (idempotent: services of ours that already run are reused)."""
    config = _config()
    # No flag: whatever runs is reused; a stopped stack starts as the default single node.
    chosen = None if brokers is None and not secure else (brokers or 1, secure)
    layout = _guard(lambda: kafka.Layout(*chosen) if chosen else None)

    def run() -> None:
        with process.locked(config.lock_file):
            for service in _services(only):
                if service is Service.kafka:
                    kst, started = kafka.start(config, layout)
                    running = kafka.saved_layout(config)
                    process.update_state(config.state_file, "kafka", kafka.state_entry(config, kst))
                    verb = "started" if started else "already running"
                    pids = ", ".join(str(pid) for pid in kst.pids) or str(kst.pid)
                    out.print(f"kafka: {verb} pid {pids} on {kst.address} "
                              f"(version {kst.version}; {running.describe()})")  # fmt: skip
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
            "pids": list(kst.pids),
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
def env(
    user: Annotated[
        str | None,
        typer.Option("--user", help="Secured stack: print the client settings of this user."),
    ] = None,
) -> None:
    """Print `export` lines: eval "$(python -m devstack env)" (bootstrap list; on a secured stack
    also the CA file, SASL mechanism, user and password file)."""
    config = _config()
    sys.stdout.write(_guard(lambda: render_env(config, user)))


@app.command("partner-provision")
def partner_provision(
    partner_id: Annotated[str, typer.Argument(help="The partner id, as in partner.<id>.events.")],
) -> None:
    """Create a partner's SCRAM user and ACLs on the secured stack: WRITE on partner.<id>.events,
    READ on partner.<id>.requests and on its consumer group partner.<id>; nothing else."""
    config = _config()

    def run() -> None:
        user = kafka.provision_partner(config, partner_id)
        secret = kafka_security.password_file(kafka.secrets_dir(config), user)
        out.print(f"partner {partner_id}: user {user}, password in {secret}, "
                  f"consumer group {kafka_security.partner_group(partner_id)}, "
                  f"CA {kafka.tls_dir(config) / 'ca.pem'}")  # fmt: skip

    _guard(run)


def main() -> None:
    app()

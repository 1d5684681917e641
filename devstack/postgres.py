"""A project-owned PostgreSQL cluster (initdb + pg_ctl) on its own port, no system service.

Authentication is ``trust`` for the Unix socket and loopback: this is a throwaway dev/test
cluster that listens on 127.0.0.1 only. Never point it at real data.

PostgreSQL refuses to run as root. As root we run initdb/pg_ctl as the ``postgres`` OS user
(created by Debian's package) via ``runuser``, with the data under /tmp (see paths.py).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import process
from devstack.errors import StackError
from devstack.paths import HOST, StackConfig, pg_url

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"  # Debian/Ubuntu layout, several majors side by side
OS_USER = "postgres"
SUPERUSER = "postgres"
APP_ROLE = "points"
APP_PASSWORD = "points"
DATABASES = ("points", "points_test", "points_bench")
CONF_NAME = "points_stack.conf"
START_TIMEOUT_S = 60
# After a crash (a killed machine, `kill -9`) PostgreSQL replays the WAL written since the last
# checkpoint before it accepts connections: with max_wal_size 4GB that can take minutes on a
# small machine. A start waits that long while the replay is visibly in progress.
RECOVERY_TIMEOUT_S = 1800
RECOVERY_POLL_S = 1.0
# How long a server that pg_ctl gave up on may take to show a replay in its log (or to have
# written its pid file) before the start counts as failed.
START_GRACE_S = 10.0
RECOVERY_REPORT_EVERY_S = 30.0
PORT_HINT = "set POINTS_STACK_PG_PORT to a free port"
# A Unix socket path is limited to 107 bytes; the socket is "<dir>/.s.PGSQL.<port>".
MAX_SOCKET_DIR = 90


@dataclass(frozen=True)
class PgStatus:
    state: str  # running | unresponsive | stopped
    pid: int | None
    address: str
    version: str | None = None
    detail: str = ""


def render_conf(config: StackConfig) -> str:
    """Settings we own, included from postgresql.conf and rewritten on every `up`."""
    settings = {
        "port": str(config.pg_port),
        "listen_addresses": f"'{HOST}'",
        # In the data dir, not /var/run/postgresql (root-owned, absent without the system service).
        "unix_socket_directories": f"'{socket_dir(config)}'",
        # A test box: durable writes stay on (fsync) so timings resemble production.
        "fsync": "on",
        "shared_buffers": "256MB",
        "max_connections": "200",
        # What an OLTP ledger database is given in production, so benchmarks measure the code
        # rather than a laptop default: checkpoints far enough apart that full-page images
        # (written after each one) do not dominate the WAL, those images compressed, and no
        # JIT compilation for statements that run in milliseconds.
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
        "wal_compression": "lz4",  # Debian builds PostgreSQL 15+ with lz4
        "jit": "off",
        # Per-statement execution times (benchmarks.bench_pipeline's breakdown of PostgreSQL's
        # share per event; an operator's first look at a slow database). Top-level statements
        # only: a trigger's work counts in the statement that fired it.
        "shared_preload_libraries": "'pg_stat_statements'",
        "pg_stat_statements.track": "top",
    }
    lines = ["# Written by devstack (python -m devstack up); edits are overwritten on each up."]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def socket_dir(config: StackConfig) -> Path:
    """The data dir, unless its path is too long for a Unix socket (deep clones)."""
    if len(str(config.pg_data_dir)) <= MAX_SOCKET_DIR:
        return config.pg_data_dir
    return Path(f"/tmp/points-exchange-pg-{config.pg_port}-{os.geteuid()}-sock")


# --- binaries --------------------------------------------------------------------------------


def find_bin_dir(pattern: str = PG_BIN_GLOB) -> Path | None:
    """The newest PostgreSQL bin dir holding initdb and pg_ctl, or one on PATH."""

    def major(path: str) -> float:
        with contextlib.suppress(ValueError):
            return float(Path(path).parent.name)
        return 0.0

    for candidate in sorted(glob.glob(pattern), key=major, reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def ensure_bin_dir(config: StackConfig) -> Path:
    """Find the server binaries; on a fresh (root, apt-based) CI machine install them first."""
    found = find_bin_dir()
    if found is not None:
        return found
    if not config.is_root or shutil.which("apt-get") is None:
        raise StackError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: "
            "install them (Debian/Ubuntu: sudo apt-get install -y postgresql)"
        )
    print("PostgreSQL not installed: apt-get update && apt-get install -y postgresql ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise StackError(f"`{' '.join(argv)}` failed (exit {result.returncode}):\n{output}")
    found = find_bin_dir()
    if found is None:
        raise StackError("installed postgresql but found no initdb/pg_ctl under " + PG_BIN_GLOB)
    return found


# --- running the tools as the right user -----------------------------------------------------


def _as_owner(config: StackConfig, argv: list[str]) -> list[str]:
    return ["runuser", "-u", OS_USER, "--", *argv] if config.is_root else argv


def _run(
    config: StackConfig, argv: list[str], *, new_session: bool = False
) -> subprocess.CompletedProcess[str]:
    # cwd = the base dir: the postgres user may not be allowed into the caller's cwd (e.g. /root).
    return subprocess.run(
        _as_owner(config, argv), cwd=config.pg_base_dir, capture_output=True, text=True,
        check=False, start_new_session=new_session, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _prepare_base_dir(config: StackConfig) -> None:
    base = config.pg_base_dir
    if not config.is_root:
        base.mkdir(parents=True, exist_ok=True)
        return
    try:
        owner = pwd.getpwnam(OS_USER)
    except KeyError:
        raise StackError(
            f"running as root needs the '{OS_USER}' OS user to run PostgreSQL: "
            "apt-get install -y postgresql creates it"
        ) from None
    base.mkdir(mode=0o700, exist_ok=True)
    info = base.stat()
    if info.st_uid not in (0, owner.pw_uid):
        raise StackError(f"{base} belongs to uid {info.st_uid}, not {OS_USER}; remove it and retry")
    os.chown(base, owner.pw_uid, owner.pw_gid)


def _write_owned(config: StackConfig, path: Path, text: str) -> None:
    path.write_text(text)
    if config.is_root:
        owner = pwd.getpwnam(OS_USER)
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _init_cluster(config: StackConfig, bin_dir: Path) -> None:
    data = config.pg_data_dir
    if (data / "PG_VERSION").exists():
        return
    # `trust` for local and loopback only (listen_addresses is 127.0.0.1): a dev/test cluster.
    result = _run(config, [
        str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
        "--encoding=UTF8", "--locale=C", "--no-instructions",
    ])  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"initdb failed:\n{result.stdout}{result.stderr}")
    conf = data / "postgresql.conf"
    conf.write_text(conf.read_text() + f"\n# devstack settings\ninclude '{CONF_NAME}'\n")


# --- our process -----------------------------------------------------------------------------


def postmaster_info(config: StackConfig) -> tuple[int, int] | None:
    """(pid, port) from our data dir's postmaster.pid when that postmaster is alive."""
    try:
        lines = (config.pg_data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 4 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
        return None
    pid, port = int(lines[0]), int(lines[3])
    return (pid, port) if process.pid_alive(pid) else None


def _admin_sql(config: StackConfig) -> None:
    """Create (or refresh) the application role and databases; safe to repeat."""
    import psycopg  # imported here: only `up` needs it

    with psycopg.connect(
        host=HOST, port=config.pg_port, user=SUPERUSER, dbname="postgres",
        autocommit=True, connect_timeout=10,
    ) as conn:  # fmt: skip
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(f"{verb} ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'")
        for name in DATABASES:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if row is None:
                conn.execute(f"CREATE DATABASE {name} OWNER {APP_ROLE}")
    for name in DATABASES:
        _statement_stats(config, name)


STATS_SCHEMA = "pgstats"


def _statement_stats(config: StackConfig, database: str) -> None:
    """pg_stat_statements in a schema of its own (the benchmarks drop and re-create
    ``public``), readable and resettable by the application role."""
    import psycopg

    with psycopg.connect(
        host=HOST, port=config.pg_port, user=SUPERUSER, dbname=database,
        autocommit=True, connect_timeout=10,
    ) as conn:  # fmt: skip
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {STATS_SCHEMA}")
        conn.execute(f"CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA {STATS_SCHEMA}")
        conn.execute(f"GRANT USAGE ON SCHEMA {STATS_SCHEMA} TO {APP_ROLE}")
        conn.execute(
            f"GRANT EXECUTE ON FUNCTION {STATS_SCHEMA}.pg_stat_statements_reset(oid, oid, bigint)"
            f" TO {APP_ROLE}"
        )


def server_version(config: StackConfig) -> str | None:
    import psycopg

    with contextlib.suppress(psycopg.Error), psycopg.connect(
        host=HOST, port=config.pg_port, user=APP_ROLE, password=APP_PASSWORD,
        dbname=DATABASES[0], connect_timeout=3,
    ) as conn:  # fmt: skip
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else None
    return None


def start(config: StackConfig) -> tuple[PgStatus, bool]:
    """Start our cluster unless it already runs; create role and databases. (status, started)."""
    running = postmaster_info(config)
    if running is not None:
        pid, port = running
        if port != config.pg_port or not process.pid_listens_on(pid, config.pg_port):
            raise StackError(
                f"this stack's PostgreSQL (pid {pid}, {config.pg_data_dir}) runs on port {port}, "
                f"not {config.pg_port}; run `python -m devstack down --only postgres` first"
            )
        _admin_sql(config)
        return status(config), False
    if not process.port_is_free(HOST, config.pg_port):
        raise StackError(
            f"port {config.pg_port} (PostgreSQL) is in use by a process this stack did not start: "
            f"stop it, or {PORT_HINT}"
        )
    bin_dir = ensure_bin_dir(config)
    _prepare_base_dir(config)
    _init_cluster(config, bin_dir)
    _write_owned(config, config.pg_data_dir / CONF_NAME, render_conf(config))
    if not config.pg_log.exists():
        _write_owned(config, config.pg_log, "")
    sock = socket_dir(config)
    if sock != config.pg_data_dir:
        sock.mkdir(mode=0o700, exist_ok=True)
        if config.is_root:
            owner = pwd.getpwnam(OS_USER)
            os.chown(sock, owner.pw_uid, owner.pw_gid)
    # Own session: the postmaster must outlive the shell (and CI step) that ran `up`.
    result = _run(config, [
        str(bin_dir / "pg_ctl"), "-D", str(config.pg_data_dir), "-l", str(config.pg_log),
        "-w", "-t", str(START_TIMEOUT_S), "start",
    ], new_session=True)  # fmt: skip
    if result.returncode != 0 and not _wait_through_crash_recovery(config, bin_dir):
        raise StackError(
            f"pg_ctl start failed (exit {result.returncode}): {result.stdout}{result.stderr}\n"
            f"last lines of {config.pg_log}:\n{process.tail(config.pg_log)}"
        )
    _admin_sql(config)
    return status(config), True


RECOVERY_MARKERS = ("automatic recovery in progress", "redo starts at", "redo in progress")


def recovery_in_progress(log_text: str) -> bool:
    """Whether the server's latest start (the log after its last "starting PostgreSQL" line)
    is replaying WAL and has not yet said it is ready."""
    start = log_text.rfind("starting PostgreSQL")
    latest = log_text[start:] if start >= 0 else log_text
    if "database system is ready to accept connections" in latest:
        return False
    return any(marker in latest for marker in RECOVERY_MARKERS)


def _wait_through_crash_recovery(config: StackConfig, bin_dir: Path) -> bool:
    """After pg_ctl gave up waiting: True once the server accepts connections, waiting up to
    RECOVERY_TIMEOUT_S while its log shows a WAL replay in progress. False when the server has
    exited, or shows no replay for START_GRACE_S (the caller then reports pg_ctl's failure)."""
    started = time.monotonic()
    reported: float | None = None
    while True:
        if _accepts_connections(config, bin_dir):
            return True
        now = time.monotonic()
        try:
            log_text = config.pg_log.read_text(errors="replace")
        except OSError:
            log_text = ""
        recovering = recovery_in_progress(log_text)
        if now - started > START_GRACE_S and (
            not recovering or postmaster_info(config) is None
        ):
            return False
        if now - started > RECOVERY_TIMEOUT_S:
            raise StackError(
                f"PostgreSQL still replays its WAL after {START_TIMEOUT_S + RECOVERY_TIMEOUT_S} s "
                f"(left running; `down` stops it); last lines of {config.pg_log}:\n"
                f"{process.tail(config.pg_log)}"
            )
        if recovering and (reported is None or now - reported >= RECOVERY_REPORT_EVERY_S):
            print(
                "postgres: recovering from an unclean shutdown (replaying WAL), waiting: "
                f"{_last_line(log_text)}",
                file=sys.stderr, flush=True,
            )  # fmt: skip
            reported = now
        time.sleep(RECOVERY_POLL_S)


def _accepts_connections(config: StackConfig, bin_dir: Path) -> bool:
    ready = bin_dir / "pg_isready"
    command = [str(ready), "-h", HOST, "-p", str(config.pg_port), "-t", "3"]
    if ready.exists():
        return subprocess.run(command, capture_output=True, check=False).returncode == 0
    return server_version(config) is not None


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else ""


def stop(config: StackConfig) -> str:
    running = postmaster_info(config)
    if running is None:
        return "postgres: not running"
    bin_dir = find_bin_dir()
    pid = running[0]
    if bin_dir is None:  # binaries removed under a running server: stop it by PID ourselves
        process.terminate(pid, 30.0)
        return f"postgres: stopped (pid {pid})"
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(config.pg_data_dir), "-w", "-t", "30"]
    result = _run(config, [*pg_ctl, "-m", "fast", "stop"])
    if result.returncode != 0:
        # Sessions that ignore the fast-shutdown request: immediate mode (crash-safe restart).
        result = _run(config, [*pg_ctl, "-m", "immediate", "stop"])
        if result.returncode != 0:
            raise StackError(f"pg_ctl stop failed: {result.stdout}{result.stderr}")
        return f"postgres: stopped in immediate mode (pid {pid})"
    return f"postgres: stopped (pid {pid})"


def status(config: StackConfig) -> PgStatus:
    address = f"{HOST}:{config.pg_port}"
    running = postmaster_info(config)
    if running is None:
        detail = "" if process.port_is_free(HOST, config.pg_port) else "port in use, not ours"
        return PgStatus("stopped", None, address, detail=detail)
    pid, port = running
    if port != config.pg_port:
        return PgStatus("unresponsive", pid, f"{HOST}:{port}", detail=f"runs on port {port}")
    version = server_version(config)
    if version is None:
        return PgStatus("unresponsive", pid, address, detail="does not accept connections")
    return PgStatus("running", pid, address, _short_version(version))


def _short_version(version: str) -> str:
    # "15.14 (Debian 15.14-0+deb12u1)" -> "15.14"
    match = re.match(r"\S+", version)
    return match.group(0) if match else version


def state_entry(config: StackConfig, st: PgStatus) -> dict[str, object]:
    return {
        "port": config.pg_port,
        "pid": st.pid,
        "version": st.version,
        "url": pg_url(config.pg_port, DATABASES[0]),
        "test_url": pg_url(config.pg_port, DATABASES[1]),
        "data_dir": str(config.pg_data_dir),
        "log": str(config.pg_log),
    }

"""Where the local stack keeps its files and which ports it uses, all read from the environment.

Nothing here touches the disk: :func:`load_config` only computes paths, so tests can build a
config for a temporary directory without side effects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import UsageError

# Keep in step with devstack/kafka-pom.xml.
KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"

DEFAULT_KAFKA_PORT = 9092
DEFAULT_PG_PORT = 55432
HOST = "127.0.0.1"

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

# Files shipped inside the package (declared as package-data in pyproject.toml).
KAFKA_POM = PACKAGE_DIR / "kafka-pom.xml"
KAFKA_TOOLS_POM = PACKAGE_DIR / "kafka-tools-pom.xml"
KAFKA_LOG4J2_TEMPLATE = PACKAGE_DIR / "kafka-log4j2.properties"

# PostgreSQL refuses to run as root, so root runs it as the `postgres` OS user, which may not be
# able to enter the repo (for example under /root). Its data then lives here instead, one per port.
ROOT_PG_BASE_TEMPLATE = "/tmp/points-exchange-pg-{port}"


def _port(environ: Mapping[str, str], name: str, default: int, *, max_port: int = 65535) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= port <= max_port:
        raise UsageError(f"{name}={port} is out of range 1..{max_port}")
    return port


@dataclass(frozen=True)
class StackConfig:
    """Every path and port of one stack instance."""

    state_dir: Path
    cache_dir: Path
    kafka_port: int
    pg_port: int
    is_root: bool

    # --- Kafka -------------------------------------------------------------------------------
    @property
    def kafka_controller_port(self) -> int:
        # The KRaft controller listener sits next to the client port so one variable moves both.
        return self.kafka_port + 1

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def kafka_data_dir(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_properties(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_log4j2(self) -> Path:
        return self.kafka_dir / "log4j2.properties"

    @property
    def kafka_log(self) -> Path:
        return self.kafka_dir / "kafka.log"

    @property
    def kafka_pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    @property
    def kafka_home(self) -> Path:
        # Versioned so a Kafka upgrade downloads next to, not over, the jars a clone still uses.
        return self.cache_dir / f"kafka-{KAFKA_VERSION}"

    @property
    def kafka_libs(self) -> Path:
        return self.kafka_home / "libs"

    @property
    def kafka_tools_libs(self) -> Path:
        # Apart from libs/: fetching the CLI tools never rewrites the jars a running broker uses.
        return self.kafka_home / "tools"

    # --- PostgreSQL --------------------------------------------------------------------------
    @property
    def pg_base_dir(self) -> Path:
        if self.is_root:
            return Path(ROOT_PG_BASE_TEMPLATE.format(port=self.pg_port))
        return self.state_dir / "postgres"

    @property
    def pg_data_dir(self) -> Path:
        return self.pg_base_dir / "data"

    @property
    def pg_log(self) -> Path:
        # Next to (not inside) the data dir: the server must be able to write it as its own user.
        return self.pg_base_dir / "postgres.log"

    # --- bookkeeping -------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / ".lock"


def load_config(
    environ: Mapping[str, str] | None = None,
    *,
    is_root: bool | None = None,
) -> StackConfig:
    """Build the config from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    state = env.get("POINTS_STACK_DIR", "").strip()
    cache = env.get("POINTS_STACK_CACHE", "").strip()
    home = Path(env.get("HOME", "") or Path.home())
    return StackConfig(
        state_dir=Path(state).expanduser().resolve() if state else REPO_ROOT / ".stack",
        cache_dir=(
            Path(cache).expanduser().resolve() if cache else home / ".cache" / "points-exchange"
        ),
        # 65534, not 65535: the controller takes the next port.
        kafka_port=_port(env, "POINTS_STACK_KAFKA_PORT", DEFAULT_KAFKA_PORT, max_port=65534),
        pg_port=_port(env, "POINTS_STACK_PG_PORT", DEFAULT_PG_PORT),
        is_root=(os.geteuid() == 0) if is_root is None else is_root,
    )


def pg_url(port: int, database: str) -> str:
    """SQLAlchemy URL for the ``points`` role on the local cluster."""
    return f"postgresql+psycopg://points:points@{HOST}:{port}/{database}"

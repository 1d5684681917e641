"""Journeys: the product driven from outside, the way its users drive it.

A journey starts the real processes as subprocesses on the local stack (a real Kafka broker and
a real PostgreSQL), exactly as README.md and docs/ tell an operator to start them, and talks to
them only through the documented interfaces:

- **Kafka topics**, written and read with confluent-kafka (librdkafka): a client nobody here
  wrote, with the settings a core-banking team would use (idempotence on, ``acks=all``, any
  compression codec). Partner messages are signed with docs/partners.md §3's recipe, here
  rewritten from the doc, not imported.
- **HTTP** with httpx, carrying a JWT minted with PyJWT as the bank's identity service would
  (docs/api.md, "Authentication").
- **The CLI** ``points-ledger`` by subprocess, with ``--json`` (docs/operations.md).

Nothing under ``tests/journeys`` imports ``points``, ``streams`` or ``adapters``: when a journey
needs a fact (a topic name, a key id), it takes it from the docs or the documented
configuration files, so a journey breaks when the product stops doing what its docs say.

Isolation: each journey gets its own database, its own topic names (the documented
``POINTS_KAFKA__TOPICS__*`` and ``POINTS_PARTNER_TOPIC_PREFIX`` settings) and its own consumer
groups (``POINTS_WORKER__APP_ID``), so journeys never see each other's messages.

Typical use (see the fixtures in ``conftest.py``)::

    def test_something(journey: Journey) -> None:
        journey.start_worker()
        with journey.bank_producer(compression="lz4") as bank:
            bank.send(journey.topics.bank_transactions, purchase(...), key="c-1")
        journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions])
        assert journey.cli_json("balance", "c-1")["available"] == 100
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self, cast
from urllib.parse import urlsplit

import httpx
import jwt
import psycopg
import yaml
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PARTNERS_CONFIG = ROOT / "config" / "partners.yaml"

# docs/api.md, "Authentication": the defaults of POINTS_API__JWT__AUDIENCE / __ISSUER.
JWT_AUDIENCE = "points-api"
JWT_ISSUER = "https://auth.bank.example"

__all__ = [
    "CliResult",
    "Journey",
    "KafkaProducer",
    "PartnerProducer",
    "Process",
    "Topics",
    "free_port",
    "sign",
    "wait_until",
]


def wait_until(
    condition: Callable[[], Any],
    timeout_s: float,
    what: str,
    on_timeout: Callable[[], str] = lambda: "",
    interval_s: float = 0.25,
) -> Any:
    """Poll ``condition`` until it returns something truthy (returned), or fail saying ``what``
    was awaited, with ``on_timeout()``'s diagnostics (process logs, last reading)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{on_timeout()}")
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sign(secret: bytes, value: bytes, signed_at: int) -> str:
    """docs/partners.md §3: lowercase hex HMAC-SHA256(secret, x-signed-at + "." + value)."""
    return hmac.new(secret, b"%d." % signed_at + value, hashlib.sha256).hexdigest()


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


class Process:
    """``python -m <module> <args>`` in its own session, output appended to a log file.

    ``stop()`` is a supervisor's SIGTERM; ``kill()`` is a crash (SIGKILL to the whole process
    group, so a worker's lane children die with it)."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", *argv]
        self.env = dict(env)
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        # False once the test stopped or killed it on purpose: only then may it be gone.
        self.should_run = False

    def start(self) -> Self:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.should_run = True
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        assert self.popen is not None
        self.should_run = False
        if self.running:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, wait up to ``timeout_s`` (then SIGKILL); the exit code."""
        if self.popen is None:
            return 0
        self.should_run = False
        if self.popen.poll() is not None:
            return self.popen.returncode
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            return self.popen.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return f"--- {self.name} ({self.log_path}) ---\n" + "\n".join(
            self.log().splitlines()[-lines:]
        )


@dataclass(frozen=True)
class CliResult:
    """What ``points-ledger`` did: exit code, stdout, stderr, and stdout parsed as JSON when
    the call asked for ``--json`` and got a document."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (
            f"points-ledger {' '.join(self.args)} -> exit {self.exit_code}\n"
            f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}"
        )


# --------------------------------------------------------------------------------------------
# Kafka with librdkafka
# --------------------------------------------------------------------------------------------


class KafkaProducer:
    """A librdkafka producer configured as a core-banking team would: idempotent, ``acks=all``,
    batches compressed with ``compression`` (none, gzip, snappy, lz4, zstd)."""

    def __init__(self, bootstrap: str, *, compression: str = "none", **extra: Any) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": compression,
            "linger.ms": 20,
        }
        config.update(extra)
        self._producer = Producer(config)
        self._errors: list[str] = []
        self.sent = 0

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send_bytes(
        self,
        topic: str,
        value: bytes | None,
        key: str | bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        key_bytes = key.encode() if isinstance(key, str) else key
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key_bytes, headers=list(headers or []),
                    on_delivery=self._on_delivery,
                )  # fmt: skip
                break
            except BufferError:  # the local queue is full: let librdkafka send some
                self._producer.poll(0.1)
        self._producer.poll(0)
        self.sent += 1

    def send(
        self,
        topic: str,
        message: Mapping[str, Any],
        key: str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> bytes:
        """Send ``message`` as compact JSON keyed by ``key`` (default: its ``customer_id``, as
        the docs require); the exact bytes sent."""
        value = json.dumps(message, separators=(",", ":")).encode()
        self.send_bytes(topic, value, key if key is not None else message.get("customer_id"),
                        headers)  # fmt: skip
        return value

    def flush(self, timeout_s: float = 60) -> None:
        left = self._producer.flush(timeout_s)
        assert left == 0, f"{left} messages still unsent after {timeout_s}s"
        assert not self._errors, f"delivery failed: {self._errors[:5]}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()


class PartnerProducer(KafkaProducer):
    """A partner publishing on its events topic, every message signed by docs/partners.md §3:
    headers ``x-key-id``, ``x-signed-at`` (Unix seconds) and ``x-signature``."""

    def __init__(
        self, bootstrap: str, topic: str, key_id: str, secret: bytes, **kafka: Any
    ) -> None:
        super().__init__(bootstrap, **kafka)
        self.topic = topic
        self.key_id = key_id
        self.secret = secret

    def publish(
        self, message: Mapping[str, Any], *, signed_at: int | None = None,
        secret: bytes | None = None,
    ) -> bytes:  # fmt: skip
        """Sign and send ``message`` keyed by its ``customer_id``; the bytes sent."""
        value = json.dumps(message, separators=(",", ":")).encode()
        at = int(time.time()) if signed_at is None else signed_at
        headers = [
            ("x-key-id", self.key_id.encode()),
            ("x-signed-at", str(at).encode()),
            ("x-signature", sign(secret or self.secret, value, at).encode()),
        ]
        self.send_bytes(self.topic, value, str(message["customer_id"]), headers)
        return value


@dataclass(frozen=True)
class Record:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes | None]  # Kafka allows a header without a value

    def json(self) -> Any:
        assert self.value is not None
        return json.loads(self.value)

    def header(self, name: str) -> str | None:
        raw = self.headers.get(name)
        return None if raw is None else raw.decode()


# --------------------------------------------------------------------------------------------
# One journey's world
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    """This journey's topic names, set through the documented settings."""

    suffix: str
    # False: the documented default names (a cluster of its own, whose ACLs name them).
    namespaced: bool = True

    @property
    def bank_transactions(self) -> str:
        return f"{self.partner_prefix}bank.transactions"

    @property
    def bank_customers(self) -> str:
        return f"{self.partner_prefix}bank.customers"

    @property
    def customer_activity(self) -> str:
        return f"{self.partner_prefix}customer.activity"

    @property
    def points_ledger(self) -> str:
        return f"{self.partner_prefix}points.ledger"

    @property
    def points_dlq(self) -> str:
        return f"{self.partner_prefix}points.dlq"

    @property
    def customer_nudges(self) -> str:
        return f"{self.partner_prefix}customer.nudges"

    @property
    def partner_prefix(self) -> str:
        return f"j{self.suffix}." if self.namespaced else ""

    def partner_events(self, partner_id: str) -> str:
        return f"{self.partner_prefix}partner.{partner_id}.events"

    def partner_requests(self, partner_id: str) -> str:
        return f"{self.partner_prefix}partner.{partner_id}.requests"

    def env(self) -> dict[str, str]:
        return {
            "POINTS_KAFKA__TOPICS__BANK_TRANSACTIONS": self.bank_transactions,
            "POINTS_KAFKA__TOPICS__BANK_CUSTOMERS": self.bank_customers,
            "POINTS_KAFKA__TOPICS__CUSTOMER_ACTIVITY": self.customer_activity,
            "POINTS_KAFKA__TOPICS__POINTS_LEDGER": self.points_ledger,
            "POINTS_KAFKA__TOPICS__POINTS_DLQ": self.points_dlq,
            "POINTS_KAFKA__TOPICS__CUSTOMER_NUDGES": self.customer_nudges,
            "POINTS_PARTNER_TOPIC_PREFIX": self.partner_prefix,
        }


CONNECTION_SETTINGS = (
    "POINTS_KAFKA__SECURITY_PROTOCOL", "POINTS_KAFKA__SASL_MECHANISM",
    "POINTS_KAFKA__SASL_USERNAME", "POINTS_KAFKA__SASL_PASSWORD",
    "POINTS_KAFKA__SASL_PASSWORD_FILE", "POINTS_KAFKA__SSL_CAFILE",
    "POINTS_KAFKA__SSL_CERTFILE", "POINTS_KAFKA__SSL_KEYFILE",
    "POINTS_KAFKA__SSL_CHECK_HOSTNAME",
)  # fmt: skip
"""README, "Configuration": how every process of the exchange connects to Kafka."""


def connection_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The documented ``POINTS_KAFKA__*`` connection settings present in ``environ``."""
    return {name: environ[name] for name in CONNECTION_SETTINGS if environ.get(name)}


def librdkafka_security(settings: Mapping[str, str]) -> dict[str, str]:
    """librdkafka properties for documented connection settings (README, "Configuration"),
    translated here from the docs -- a bank's own client connects the same way."""
    get = settings.get
    config = {"security.protocol": get("POINTS_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")}
    if config["security.protocol"].startswith("SASL_"):
        password = get("POINTS_KAFKA__SASL_PASSWORD")
        if password is None:
            password = Path(settings["POINTS_KAFKA__SASL_PASSWORD_FILE"]).read_text().strip()
        config |= {"sasl.mechanism": get("POINTS_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
                   "sasl.username": settings["POINTS_KAFKA__SASL_USERNAME"],
                   "sasl.password": password}  # fmt: skip
    for name, prop in (("SSL_CAFILE", "ssl.ca.location"),
                       ("SSL_CERTFILE", "ssl.certificate.location"),
                       ("SSL_KEYFILE", "ssl.key.location")):  # fmt: skip
        if get(f"POINTS_KAFKA__{name}"):
            config[prop] = settings[f"POINTS_KAFKA__{name}"]
    if get("POINTS_KAFKA__SSL_CHECK_HOSTNAME", "true").lower() == "false":
        config["ssl.endpoint.identification.algorithm"] = "none"
    return config


def partner_key_ids() -> dict[str, tuple[str, str]]:
    """partner id -> (signing key id, environment variable), from config/partners.yaml
    (``signing_keys``, the first key signs; docs/partners.md §3)."""
    config = yaml.safe_load(PARTNERS_CONFIG.read_text())
    out: dict[str, tuple[str, str]] = {}
    for partner_id, partner in config["partners"].items():
        first = partner["signing_keys"][0]
        out[partner_id] = (first["key_id"], first["env"])
    return out


def create_database(stack_pg_url: str, name: str) -> str:
    """A new, empty database on the stack's PostgreSQL, owned by the stack's application role;
    its SQLAlchemy URL. (Provisioning, as an operator would: not a product interface.)"""
    parts = urlsplit(stack_pg_url)
    with psycopg.connect(
        host=parts.hostname, port=parts.port, user="postgres", dbname="postgres",
        autocommit=True, connect_timeout=10,
    ) as conn:  # fmt: skip
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{parts.username}"')
    return stack_pg_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(stack_pg_url: str, name: str) -> None:
    parts = urlsplit(stack_pg_url)
    with psycopg.connect(
        host=parts.hostname, port=parts.port, user="postgres", dbname="postgres",
        autocommit=True, connect_timeout=10,
    ) as conn:  # fmt: skip
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Journey:
    """One journey's isolated world on the local stack: a database, topic names, consumer
    groups, partner keys, a JWT secret and an operator token; and the means to start the
    product's processes and talk to them from outside."""

    bootstrap: str
    database_url: str
    log_dir: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    partitions: int = 4
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    ops_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    referral_secret_hex: str = field(default_factory=lambda: secrets.token_hex(32))
    partner_secrets: dict[str, bytes] = field(
        default_factory=lambda: {p: secrets.token_bytes(32) for p in partner_key_ids()}
    )
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    api_port: int | None = None
    # Distinguishes the consumer groups of two journeys on the same topics (see twin()).
    group_tag: str = ""
    # How this journey's own clients (the test's core banking, partners, probes) and, unless
    # ``principals`` names theirs, the processes connect: POINTS_KAFKA__* connection settings
    # (README, "Configuration"), by default those of the environment (`devstack env`).
    kafka_env: dict[str, str] = field(default_factory=lambda: connection_settings(os.environ))
    # Per process name ("worker", "partner-worker", "api", "simulator"): its own principal's
    # connection settings (`devstack env --user NAME`).
    principals: dict[str, dict[str, str]] = field(default_factory=dict)
    # False: the documented default topic names and app id (see Topics.namespaced).
    namespaced: bool = True

    # --- names ---------------------------------------------------------------------------
    @property
    def topics(self) -> Topics:
        return Topics(self.suffix, self.namespaced)

    @property
    def app_id(self) -> str:
        if not self.namespaced:  # README: POINTS_WORKER__APP_ID's default
            return f"points-exchange{self.group_tag}"
        return f"journey-{self.suffix}{self.group_tag}"

    def twin(self, database_url: str, log_dir: Path, group_tag: str = "-twin") -> Journey:
        """Another world reading the same topics with the same keys and secrets, but with its
        own database and consumer groups: an undisturbed reference run beside a disturbed one."""
        return Journey(
            bootstrap=self.bootstrap, database_url=database_url, log_dir=log_dir,
            suffix=self.suffix, partitions=self.partitions, jwt_secret=self.jwt_secret,
            ops_token=self.ops_token, referral_secret_hex=self.referral_secret_hex,
            partner_secrets=self.partner_secrets, extra_env=dict(self.extra_env),
            group_tag=group_tag, kafka_env=dict(self.kafka_env), namespaced=self.namespaced,
        )  # fmt: skip

    @property
    def worker_group(self) -> str:
        """The earning worker's consumer group: its app id (faust uses the app id)."""
        return self.app_id

    @property
    def partner_worker_group(self) -> str:
        """docs/partners.md §8: the partner worker's app id is ``<app_id>-partners``."""
        return f"{self.app_id}-partners"

    # --- environment ---------------------------------------------------------------------
    def env(self, **overrides: str) -> dict[str, str]:
        """The documented settings every process of this journey runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("POINTS_")}
        env.update(
            {
                "POINTS_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "POINTS_KAFKA__TOPIC_PARTITIONS": str(self.partitions),
                "POINTS_DATABASE__URL": self.database_url,
                "POINTS_DATA_DIR": str(self.log_dir / "data"),
                "POINTS_WORKER__APP_ID": self.app_id,
                # Quick enough for a test, real otherwise: offsets commit only after the batch.
                "POINTS_WORKER__BATCH_WAIT_MS": "50",
                "POINTS_WORKER__COMMIT_INTERVAL_MS": "200",
                "POINTS_WORKER__SESSION_TIMEOUT_MS": "6000",
                "POINTS_REFERRAL_SECRET": self.referral_secret_hex,
                "POINTS_API__REFERRAL_SECRET": self.referral_secret_hex,
                "POINTS_API__JWT__ALGORITHMS": '["HS256"]',
                "POINTS_API__JWT__SECRET": self.jwt_secret,
                "POINTS_API__OPS_TOKEN": self.ops_token,
                "POINTS_API__RATE_LIMIT__RATE_PER_S": "1000",
                "POINTS_API__RATE_LIMIT__BURST": "2000",
            }
        )
        env.update(self.kafka_env)
        env.update(self.topics.env())
        for partner, (_key_id, variable) in partner_key_ids().items():
            env[variable] = self.partner_secrets[partner].hex()
        env.update(self.extra_env)
        env.update(overrides)
        return env

    # --- processes -------------------------------------------------------------------------
    def _process(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
        log = self.log_dir / f"{name}-{len(self.processes)}.log"
        if name in self.principals:  # the process connects as its own principal
            env = {k: v for k, v in env.items() if k not in CONNECTION_SETTINGS}
            env = {**env, **self.principals[name]}
        process = Process(name, argv, env, log).start()
        self.processes.append(process)
        return process

    def start_worker(self, **env: str) -> Process:
        """``python -m streams.worker`` (README, "Running pieces by hand"); waits until it
        created its topics."""
        process = self._process("worker", ["streams.worker"], self.env(**env))
        self.wait_for_topics(
            [self.topics.bank_transactions, self.topics.bank_customers,
             self.topics.customer_activity], process,
        )  # fmt: skip
        return process

    def start_partner_worker(self, **env: str) -> Process:
        """``python -m streams.partner_worker``; waits until the partner topics exist."""
        process = self._process("partner-worker", ["streams.partner_worker"], self.env(**env))
        self.wait_for_topics(
            [self.topics.partner_events(p) for p in self.partner_secrets], process
        )
        return process

    def start_api(self, **env: str) -> Process:
        """``python -m points.api`` on a free port; waits for ``GET /health``."""
        self.api_port = free_port()
        process = self._process(
            "api", ["points.api"], self.env(POINTS_API__PORT=str(self.api_port), **env)
        )

        def healthy() -> bool:
            if not process.running:
                raise AssertionError(f"the API exited early\n{process.log_tail()}")
            try:
                return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, "the API's /health", process.log_tail)
        return process

    def start_simulator(self, *args: str, **env: str) -> Process:
        """``python -m adapters.simulator --topic-prefix <this journey's> ...``
        (docs/partners.md §7)."""
        argv = ["adapters.simulator", "--topic-prefix", self.topics.partner_prefix, *args]
        return self._process("simulator", argv, self.env(**env))

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout_s=20)

    def logs(self) -> str:
        return "\n".join(p.log_tail() for p in self.processes)

    def check_alive(self) -> None:
        """Fail at once, with its log, if a process the journey started died on its own."""
        for process in self.processes:
            if process.should_run and not process.running:
                code = process.popen.returncode if process.popen else None
                raise AssertionError(f"{process.name} exited ({code})\n{process.log_tail()}")

    # --- the CLI ---------------------------------------------------------------------------
    def cli(self, *args: str, env: Mapping[str, str] | None = None,
            timeout_s: float = 120) -> CliResult:  # fmt: skip
        """``points-ledger <args>`` by subprocess with this journey's settings."""
        done = subprocess.run(
            [str(BIN / "points-ledger"), *args],
            cwd=ROOT, env=dict(env or self.env()), capture_output=True, text=True,
            timeout=timeout_s, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return CliResult(tuple(args), done.returncode, done.stdout, done.stderr)

    def cli_json(self, *args: str, expect_exit: int = 0) -> Any:
        """``points-ledger --json <args>``: the JSON document, after checking the exit code."""
        result = self.cli("--json", *args)
        assert result.exit_code == expect_exit, str(result)
        return result.json

    def migrate(self) -> None:
        result = self.cli("migrate")
        assert result.exit_code == 0, str(result)

    # --- HTTP ------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        assert self.api_port is not None, "start_api() first"
        return f"http://127.0.0.1:{self.api_port}"

    def token(self, customer_id: str, *, ttl_s: int = 600) -> str:
        """An access token for ``customer_id`` as the bank's identity service issues it."""
        now = int(time.time())
        claims = {"sub": customer_id, "iat": now, "exp": now + ttl_s,
                  "aud": JWT_AUDIENCE, "iss": JWT_ISSUER}  # fmt: skip
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")

    @contextmanager
    def customer(self, customer_id: str) -> Iterator[httpx.Client]:
        """An httpx client signed in as ``customer_id``."""
        headers = {"Authorization": f"Bearer {self.token(customer_id)}"}
        with httpx.Client(base_url=self.api_url, headers=headers, timeout=30) as client:
            yield client

    # --- Kafka -----------------------------------------------------------------------------
    def client_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka properties of this journey's own clients (``kafka_env``)."""
        return {"bootstrap.servers": self.bootstrap, **librdkafka_security(self.kafka_env)}

    def admin(self) -> AdminClient:
        return AdminClient(self.client_config())

    def wait_for_topics(self, topics: Sequence[str], process: Process | None = None,
                        timeout_s: float = 90) -> None:  # fmt: skip
        admin = self.admin()

        def present() -> bool:
            if process is not None and not process.running:
                raise AssertionError(f"{process.name} exited early\n{process.log_tail()}")
            names = admin.list_topics(timeout=5).topics
            return all(t in names for t in topics)

        wait_until(present, timeout_s, f"topics {list(topics)}",
                   process.log_tail if process else self.logs)  # fmt: skip

    def bank_producer(self, compression: str = "none", **extra: Any) -> KafkaProducer:
        return KafkaProducer(self.bootstrap, compression=compression,
                             **librdkafka_security(self.kafka_env), **extra)  # fmt: skip

    def partner(self, partner_id: str, compression: str = "none") -> PartnerProducer:
        key_id, _variable = partner_key_ids()[partner_id]
        return PartnerProducer(
            self.bootstrap, self.topics.partner_events(partner_id), key_id,
            self.partner_secrets[partner_id], compression=compression,
            **librdkafka_security(self.kafka_env),
        )  # fmt: skip

    def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        consumer = self._consumer(f"probe-{uuid.uuid4().hex}")
        try:
            meta = consumer.list_topics(timeout=10)
            ends: dict[TopicPartition, int] = {}
            for topic in topics:
                for partition in meta.topics[topic].partitions:
                    _low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=10
                    )
                    ends[TopicPartition(topic, partition)] = high
            return ends
        finally:
            consumer.close()

    def _consumer(self, group: str, **extra: Any) -> Consumer:
        return Consumer({**self.client_config(), "group.id": group,
                         "enable.auto.commit": False, **extra})  # fmt: skip

    def committed(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """``group``'s committed offsets (librdkafka's OffsetFetch), -1001 where none."""
        consumer = self._consumer(group)
        try:
            result = consumer.committed(list(partitions), timeout=10)
            return {TopicPartition(tp.topic, tp.partition): tp.offset for tp in result}
        finally:
            consumer.close()

    def wait_caught_up(self, group: str, topics: Sequence[str], timeout_s: float = 120) -> None:
        """Wait until ``group`` committed offsets at the end of every partition of ``topics``.
        The workers commit an offset only after the batch's database transaction committed
        (README, "Guarantees"), so this means every message written so far has its outcome."""
        ends = self.end_offsets(topics)
        last: dict[str, Any] = {}

        def caught_up() -> bool:
            self.check_alive()
            try:
                done = self.committed(group, list(ends))
            except KafkaException:
                return False
            lag = {f"{tp.topic}[{tp.partition}]": end - max(done.get(tp, 0), 0)
                   for tp, end in ends.items()}  # fmt: skip
            last["lag"] = {name: behind for name, behind in lag.items() if behind > 0}
            return not last["lag"]

        wait_until(caught_up, timeout_s, f"group {group} to consume {list(topics)}",
                   lambda: f"lag: {last.get('lag')}\n{self.logs()}", interval_s=0.5)  # fmt: skip

    def read_topic(self, topic: str, *, at_least: int = 1, timeout_s: float = 60,
                   match: Callable[[Record], bool] = lambda _r: True) -> list[Record]:  # fmt: skip
        """Read ``topic`` from the beginning until ``at_least`` records satisfying ``match``
        arrived (or fail); every matching record read."""
        consumer = self._consumer(f"reader-{uuid.uuid4().hex}", **{"auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        found: list[Record] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(found) < at_least and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                source, partition, offset = message.topic(), message.partition(), message.offset()
                assert source is not None and partition is not None and offset is not None
                # A consumed message's headers are a list of (name, bytes or None); the stubs'
                # type also covers the dict and str values a producer may pass.
                headers = cast("list[tuple[str, bytes | None]]", message.headers() or [])
                record = Record(
                    source, partition, offset, message.key(), message.value(), dict(headers)
                )
                if match(record):
                    found.append(record)
        finally:
            consumer.close()
        assert len(found) >= at_least, (
            f"read {len(found)} of {at_least} records from {topic} in {timeout_s}s\n{self.logs()}"
        )
        return found


def event_time(days_ago: float = 0, *, at: datetime | None = None) -> str:
    """An ``occurred_at`` (ISO 8601 with zone) ``days_ago`` before ``at`` (default now)."""
    return iso((at or now_utc()) - timedelta(days=days_ago))

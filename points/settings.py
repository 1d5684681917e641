"""The exchange's settings, read from the environment at the edge.

Every variable is prefixed ``POINTS_``; nested groups use ``__`` (for example
``POINTS_KAFKA__BOOTSTRAP_SERVERS``). :class:`Settings` is what every process reads: the
workers, the operations CLI (its ``ops`` group) and the customer API (database, rules, Kafka).
The API alone also reads ``POINTS_API__*`` through :class:`points.api.settings.ApiSettings`:
it refuses to start without its token settings, which the workers and the CLI never need, so
that group is not part of this object (README, "Configuration"). Nothing builds settings at
import time: entry points call :func:`load_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from points.gifts.policy import GiftSettings
from points.ledger.model import AMOUNT_MAX

__all__ = [
    "DatabaseSettings",
    "KafkaSettings",
    "OpsSettings",
    "RulesSettings",
    "Settings",
    "TopicNames",
    "WorkerSettings",
    "load_settings",
]

ENV_PREFIX = "POINTS_"


class TopicNames(BaseModel):
    """Topic names, declared once. Partner topics are derived per partner id."""

    bank_transactions: str = "bank.transactions"
    bank_customers: str = "bank.customers"
    customer_activity: str = "customer.activity"
    points_ledger: str = "points.ledger"
    points_dlq: str = "points.dlq"
    customer_nudges: str = "customer.nudges"

    def partner_events(self, partner_id: str) -> str:
        return f"partner.{partner_id}.events"

    def partner_requests(self, partner_id: str) -> str:
        return f"partner.{partner_id}.requests"

    def source_topics(self) -> list[str]:
        """Topics we consume and therefore create explicitly with our partition count."""
        return [self.bank_transactions, self.bank_customers, self.customer_activity]

    def output_topics(self) -> list[str]:
        return [self.points_ledger, self.points_dlq, self.customer_nudges]


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSettings(BaseModel):
    """How every Kafka client of the exchange connects (``POINTS_KAFKA__*``).

    One group for all of them -- the faust workers, the outbox relay, topic creation, the API's
    lag reader, the partner simulator, the demo and the benchmarks: each builds its client
    through :mod:`streams.kafka_clients` from this object (README, "Configuration"). The
    password is a :class:`SecretStr` (its repr and logs show ``**********``), given either in
    ``POINTS_KAFKA__SASL_PASSWORD`` or as a file in ``POINTS_KAFKA__SASL_PASSWORD_FILE``.
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    # Partition count for every topic we create. faust's internal topics use the same number:
    # a mismatch between the two raises PartitionsMismatch at worker start.
    topic_partitions: int = Field(default=4, ge=1, le=1024)
    topics: TopicNames = TopicNames()
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    # The CA that signed the brokers' certificates (PEM); unset: the system's trust store.
    ssl_cafile: Path | None = None
    # mTLS: this client's certificate chain and private key (PEM), both or neither.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    # Check that the broker's certificate names the host we dialled. Turn off only for a
    # broker whose certificate cannot name its address; the chain is verified either way.
    ssl_check_hostname: bool = True
    # Replicas of every topic the exchange creates (its own and faust's internal ones), and
    # the topic's min.insync.replicas. Unset: chosen from the brokers the cluster reports
    # (streams/topics.py): RF min(brokers, 3); min.insync 2 with 3 replicas, else 1.
    replication_factor: int | None = Field(default=None, ge=1, le=16)
    min_insync_replicas: int | None = Field(default=None, ge=1, le=16)
    # Run on existing topics with fewer replicas than the replication factor (a warning per
    # topic) instead of refusing to start (exit 78).
    accept_lower_replication: bool = False

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _coherent_security(self) -> KafkaSettings:
        """Refuse settings that would connect differently from what the operator meant."""
        sasl_given = [
            name
            for name in ("sasl_username", "sasl_password", "sasl_password_file")
            if getattr(self, name) is not None
        ]
        if self.uses_sasl:
            if not self.sasl_username:
                raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username")
            if (self.sasl_password is None) == (self.sasl_password_file is None):
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs exactly one of "
                    "sasl_password and sasl_password_file"
                )
        elif sasl_given:
            raise ValueError(
                f"{', '.join(sasl_given)} set but security_protocol is {self.security_protocol}"
                " (SASL_SSL or SASL_PLAINTEXT uses them)"
            )
        tls_given = [
            name
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")
            if getattr(self, name) is not None
        ]
        if tls_given and not self.uses_tls:
            raise ValueError(
                f"{', '.join(tls_given)} set but security_protocol is {self.security_protocol}"
                " (SSL or SASL_SSL uses them)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together (mTLS): set both or none")
        if (
            self.replication_factor is not None
            and self.min_insync_replicas is not None
            and self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError(
                f"min_insync_replicas {self.min_insync_replicas} is above replication_factor "
                f"{self.replication_factor}: no write could ever be acknowledged"
            )
        return self

    def sasl_password_value(self) -> str | None:
        """The SASL password, from the setting or read (stripped) from its file."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            return self.sasl_password_file.expanduser().read_text().strip()
        return None


class DatabaseSettings(BaseModel):
    # None means the embedded default: an SQLite file under ``data_dir``.
    url: str | None = None
    echo: bool = False


class WorkerSettings(BaseModel):
    app_id: str = "points-exchange"
    web_enabled: bool = False
    web_port: int = Field(default=6066, ge=1, le=65535)
    # How many messages one database transaction takes, and how long a partial batch may wait.
    batch_size_max: int = Field(default=1000, ge=1, le=100_000)
    batch_wait_ms: int = Field(default=100, ge=1, le=60_000)
    # How often faust commits the offsets it has acked (after our database commit).
    commit_interval_ms: int = Field(default=500, ge=10, le=60_000)
    # How long the group waits for a silent (crashed) worker before handing its partitions
    # to the others. The broker refuses values below its group.min.session.timeout.ms (6 s).
    session_timeout_ms: int = Field(default=30_000, ge=6_000, le=300_000)
    # How long the broker may hold a fetch for partitions with nothing new. faust fixes it at
    # 1.5 s, which delays messages on quiet partitions while busy ones are being drained.
    fetch_max_wait_ms: int = Field(default=50, ge=5, le=5_000)
    # Database transactions one worker runs at once, each on its own share of the fetched
    # partitions (partition number modulo lanes): while one waits for PostgreSQL, another
    # evaluates rules. SQLite takes one writer at a time, so it always gets one lane.
    db_lanes: int = Field(default=2, ge=1, le=16)
    # Run each lane in a child process of its own (when there is more than one), so the lanes'
    # Python uses more than one core (streams/lane_processes.py); false keeps them in threads.
    lane_processes: bool = True
    # Customers whose rule state and profile the worker keeps in memory between batches
    # (points/earning/working_set.py); 0 reads every batch's customers from the database.
    working_set_capacity: int = Field(default=200_000, ge=0, le=50_000_000)
    # Young-generation threshold of Python's cycle collector in the worker and partner worker
    # processes (see streams/runtime.py): the default 700 made collections a third of the
    # worker's CPU. Lane processes do not use it: they collect between batches instead.
    gc_gen0_threshold: int = Field(default=50_000, ge=700, le=10_000_000)
    # How often the group leader looks for time-based nudges (points/nudges/timers.py).
    nudge_timer_interval_s: float = Field(default=30.0, ge=0.1, le=3600.0)
    # How often its later rounds of a day look again, at the customers written since, for
    # streaks and lifecycle stages newly at risk (the day's first round looks at everyone).
    nudge_rescan_interval_s: float = Field(default=600.0, ge=0.1, le=86_400.0)
    # How long a worker keeps retrying while the database is unreachable (a batch's
    # transaction, the outbox relay; the relay waits as long for the broker) before it exits
    # with code 75 for its supervisor to restart it. Covers a PostgreSQL restart or fail-over.
    db_outage_tolerance_s: float = Field(default=60.0, ge=0.0, le=86_400.0)


class RulesSettings(BaseModel):
    # The earning rule file (see docs/rules.md); relative paths are from the working directory.
    path: Path = Path("rules/default.yaml")
    # How long earned points live before the expiry run takes what is left of them.
    lot_lifetime_days: int = Field(default=365, ge=1, le=3650)


class OpsSettings(BaseModel):
    """The operations CLI's group (``POINTS_OPS__*``)."""

    # An adjustment moving more points than this (either sign) waits for a second operator.
    approval_threshold: int = Field(default=10_000, ge=0, le=AMOUNT_MAX)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Path("data")
    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    worker: WorkerSettings = WorkerSettings()
    rules: RulesSettings = RulesSettings()
    ops: OpsSettings = OpsSettings()
    gifts: GiftSettings = GiftSettings()

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def database_url(self) -> str:
        """The URL the ledger connects to: the configured one, or the embedded SQLite file."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment; keyword overrides win (used by tests and CLIs)."""
    return Settings(**overrides)  # type: ignore[arg-type]

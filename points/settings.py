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

from pydantic import BaseModel, Field, field_validator
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

    def partner_events(self, partner_id: str) -> str:
        return f"partner.{partner_id}.events"

    def partner_requests(self, partner_id: str) -> str:
        return f"partner.{partner_id}.requests"

    def source_topics(self) -> list[str]:
        """Topics we consume and therefore create explicitly with our partition count."""
        return [self.bank_transactions, self.bank_customers, self.customer_activity]

    def output_topics(self) -> list[str]:
        return [self.points_ledger, self.points_dlq]


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    # Partition count for every topic we create. faust's internal topics use the same number:
    # a mismatch between the two raises PartitionsMismatch at worker start.
    topic_partitions: int = Field(default=4, ge=1, le=1024)
    topics: TopicNames = TopicNames()


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

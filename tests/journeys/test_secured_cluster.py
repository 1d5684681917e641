"""Journeys on a production-shaped Kafka: three brokers (`python -m devstack up --secure
--brokers 3`, docs/operations.md), SASL_SSL with SCRAM-SHA-512 behind the stack's CA, and the
bank's own principals with only their ACLs: the earning worker runs as ``worker``, the partner
worker as ``partner-worker``, the API as ``api`` -- each configured with the documented
``POINTS_KAFKA__*`` connection settings that `devstack env --user NAME` prints. Core banking,
the partners and the test's probes connect as the stack's ``admin`` (they are not the
exchange). Topic names and consumer groups are the documented defaults: this cluster is the
module's own, and the principals' ACLs name those.

One cluster for the whole module (it takes ~30 s to start), on its own ports from
POINTS_TEST_KAFKA_EXTRA_PORT (default 29092; 9 ports: 3 client, 3 controller, 3 internal)
and its own state dir, so the developer's stack is never touched; PostgreSQL is the stack's.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from tests.integration.kafka_security.test_secured_stack import _devstack, _free_run
from tests.journeys import test_outages, test_partner_merchant
from tests.journeys.conftest import _require
from tests.journeys.harness import ROOT, Journey, create_database, drop_database, wait_until
from tests.journeys.test_crash_recovery import a_day, assert_same_ledger, start_beside_twin

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The undisturbed twin on the embedded SQLite ledger, here beside this module's ``journey``.
embedded_twin = test_outages.embedded_twin

CLUSTER_PORTS = 9
PRINCIPALS = {"worker": "worker", "partner-worker": "partner-worker", "api": "api"}


def devstack(env: dict[str, str], *args: str) -> str:
    """``python -m devstack ARGS`` (docs/local-stack.md) with ``env``; its stdout."""
    return _devstack(env, *args)


@dataclass
class Cluster:
    """The module's secured 3-broker stack, driven through `python -m devstack`."""

    env: dict[str, str]

    def settings(self, user: str) -> dict[str, str]:
        """`devstack env --user USER`: the variables it exports (documented names)."""
        exported = {}
        for line in devstack(self.env, "env", "--user", user).splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            exported[name] = shlex.split(value)[0] if value else ""
        return exported

    @property
    def bootstrap(self) -> str:
        return self.settings("admin")["POINTS_KAFKA__BOOTSTRAP_SERVERS"]

    def connection(self, user: str) -> dict[str, str]:
        return {k: v for k, v in self.settings(user).items() if k.startswith("POINTS_KAFKA__")
                and k != "POINTS_KAFKA__BOOTSTRAP_SERVERS"}  # fmt: skip

    def node_pids(self) -> dict[int, int]:
        """Broker node id -> pid, from `devstack status --json` (pids in node order)."""
        import json

        status = json.loads(devstack(self.env, "status", "--json"))
        pids = status["kafka"]["pids"]
        assert len(pids) == 3, status
        return {number: pid for number, pid in enumerate(pids, 1)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    start = int(os.environ.get("POINTS_TEST_KAFKA_EXTRA_PORT", "29092"))
    base = _free_run(start, CLUSTER_PORTS)
    env = {**os.environ, "POINTS_STACK_DIR": str(tmp_path_factory.mktemp("secured-cluster")),
           "POINTS_STACK_KAFKA_PORT": str(base)}  # fmt: skip
    try:
        devstack(env, "up", "--only", "kafka", "--secure", "--brokers", "3")
        yield Cluster(env)
    finally:
        devstack(env, "down", "--only", "kafka")


@pytest.fixture
def journey(cluster: Cluster, tmp_path: Path) -> Iterator[Journey]:
    """A journey on the secured cluster: the documented default names, each process its own
    principal, the test's own clients as ``admin``; a fresh PostgreSQL database."""
    stack_pg_url = _require("POINTS_STACK_PG_URL")
    world = Journey(
        bootstrap=cluster.bootstrap, database_url="", log_dir=tmp_path,
        kafka_env=cluster.connection("admin"), namespaced=False,
        principals={name: cluster.connection(user) for name, user in PRINCIPALS.items()},
        # A broker restart moves leaders: give the workers' group time to notice, not 60 s.
        extra_env={"POINTS_WORKER__DB_OUTAGE_TOLERANCE_S": "120"},
    )  # fmt: skip
    name = f"journey_{world.suffix}"
    world.database_url = create_database(stack_pg_url, name)
    (tmp_path / "data").mkdir()
    world.migrate()
    try:
        yield world
    finally:
        world.stop_all()
        print(world.logs())
        drop_database(stack_pg_url, name)


def test_the_partner_merchant_journey_runs_over_sasl_ssl_as_the_banks_principals(
    journey: Journey, tmp_path: Path
) -> None:
    """The whole earning and swap journey of test_partner_merchant.py (member links, partner
    rides that earn what backtest says, a swap confirmed through the app, a swap expired and
    its late confirmation, settlement) with the worker, partner worker and API each connected
    over SASL_SSL as its own principal, limited by its ACLs; the dashboard's lag panel, read
    as `api`, shows the earning group's lag. The partner topics the partner worker created
    have RF 3 and min.insync.replicas=2."""
    test_partner_merchant.test_partner_links_earns_swaps_and_settles_as_documented(
        journey, tmp_path
    )
    # The operations dashboard's lag panel reads the workers' group as the `api` principal.
    def lag() -> Any:
        answer = httpx.get(f"{journey.api_url}/ops/api/summary", timeout=10,
                           headers={"Authorization": f"Bearer {journey.ops_token}"})
        assert answer.status_code == 200, answer.text
        shown = answer.json()["lag"]
        return shown if shown.get("status") == "ok" else None

    partner_topics = [name for p in journey.partner_secrets for name in
                      (journey.topics.partner_events(p), journey.topics.partner_requests(p))]
    partner_topics.append(f"{journey.partner_worker_group}-__assignor-__leader")
    assert replication_of(journey, partner_topics) == dict.fromkeys(partner_topics, (3, "2"))
    panel = wait_until(lag, 30, "the lag panel over SASL_SSL", journey.logs)
    assert panel["topics"][journey.topics.bank_customers]["committed"] > 0, panel
    for process in journey.processes:
        user = process.env["POINTS_KAFKA__SASL_USERNAME"]
        assert (process.env["POINTS_KAFKA__SECURITY_PROTOCOL"], user) == (
            "SASL_SSL", PRINCIPALS[process.name]), process.name


def replication_of(journey: Journey, topics: list[str]) -> dict[str, tuple[int, str]]:
    """topic -> (fewest replicas of any partition, its min.insync.replicas)."""
    admin: AdminClient = journey.admin()
    metadata = admin.list_topics(timeout=20).topics
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    configs = {r.name: f.result(timeout=20) for r, f in admin.describe_configs(resources).items()}
    return {
        t: (min(len(p.replicas) for p in metadata[t].partitions.values()),
            configs[t]["min.insync.replicas"].value)
        for t in topics
    }  # fmt: skip


def busiest_leader(journey: Journey, topics: list[str]) -> int:
    """The broker leading most partitions of ``topics``."""
    metadata = journey.admin().list_topics(timeout=20).topics
    leaders = Counter(p.leader for t in topics for p in metadata[t].partitions.values())
    return leaders.most_common(1)[0][0]


def stack_postgres_pid() -> int:
    status = subprocess.run(
        [sys.executable, "-m", "devstack", "status", "--json"], cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    import json

    return int(json.loads(status.stdout)["postgres"]["pid"])


def postgres_up() -> None:
    devstack(dict(os.environ), "up", "--only", "postgres")


def test_a_broker_killed_and_a_database_restart_on_the_secured_cluster_keep_the_exact_ledger(
    cluster: Cluster, journey: Journey, embedded_twin: Journey
) -> None:
    """Over SASL_SSL as the ``worker`` principal, on three brokers: the topics the worker
    created have RF 3 and min.insync.replicas=2 (faust's leader topic too). Mid-day the broker
    leading most partitions is killed with SIGKILL and started again later; then PostgreSQL is
    stopped in immediate mode (a crash) and started again. The worker keeps going or comes back
    by itself (still running at the end, no restart by the test), and every customer's balance,
    held points, debt and expiring points equal an undisturbed twin's; `verify` is clean."""
    twin = embedded_twin
    started = time.monotonic()
    worker = start_beside_twin(journey, twin)
    ours = [journey.topics.bank_transactions, journey.topics.bank_customers,
            journey.topics.customer_activity, journey.topics.points_ledger,
            journey.topics.points_dlq, f"{journey.app_id}-__assignor-__leader"]  # fmt: skip
    assert replication_of(journey, ours) == dict.fromkeys(ours, (3, "2"))

    day = a_day(seed=20261207)
    chunks = [day[i : i + 200] for i in range(0, len(day), 200)]
    victim_pid = None
    with journey.bank_producer(compression="lz4") as bank:
        for number, chunk in enumerate(chunks):
            if number == 2:
                victim = busiest_leader(journey, [journey.topics.bank_transactions])
                victim_pid = cluster.node_pids()[victim]
                os.kill(victim_pid, signal.SIGKILL)
            if number == 5:  # the killed broker comes back (its data dir is intact)
                devstack(cluster.env, "up", "--only", "kafka")
            if number == 8:  # PostgreSQL crashes: immediate shutdown, no checkpoint
                os.kill(stack_postgres_pid(), signal.SIGQUIT)
                time.sleep(8)
                postgres_up()
            for message in chunk:
                bank.send(journey.topics.bank_transactions, message)
            bank.flush()
            time.sleep(0.5)
            assert worker.running, worker.log_tail()
    assert victim_pid is not None
    assert len(set(cluster.node_pids().values()) - {victim_pid}) == 3

    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_transactions],
                           timeout_s=240)  # fmt: skip
    assert worker.running, worker.log_tail()
    assert "waiting for the database" in worker.log(), worker.log_tail()
    twin.wait_caught_up(twin.worker_group, [journey.topics.bank_transactions], timeout_s=240)

    assert_same_ledger(journey, twin)
    print(f"faults journey: {time.monotonic() - started:.0f} s")



def test_a_worker_refuses_topics_with_fewer_replicas_than_the_cluster_holds(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Topics that exist with one replica on the 3-broker cluster (as an older version created
    them from a one-host bootstrap string): the worker exits 78 with one CRITICAL line naming
    the replication; with POINTS_KAFKA__ACCEPT_LOWER_REPLICATION=true it runs (warning)."""
    from confluent_kafka.admin import NewTopic

    world = Journey(bootstrap=cluster.bootstrap, database_url=f"sqlite:///{tmp_path}/l.sqlite3",
                    log_dir=tmp_path, kafka_env=cluster.connection("admin"))  # fmt: skip
    (tmp_path / "data").mkdir()
    names = [world.topics.bank_transactions, world.topics.bank_customers,
             world.topics.customer_activity, world.topics.points_ledger,
             world.topics.points_dlq]  # fmt: skip
    admin = world.admin()
    for future in admin.create_topics([NewTopic(n, 4, 1) for n in names]).values():
        future.result(timeout=30)
    world.migrate()
    try:
        refused = world._process("worker", ["streams.worker"], world.env())
        assert refused.popen is not None
        assert refused.popen.wait(timeout=120) == 78, refused.log_tail()
        critical = [line for line in refused.log().splitlines() if "CRITICAL" in line]
        assert len(critical) == 1, refused.log_tail()
        assert "replication factor 1, below the 3 configured" in critical[0]
        assert all(name in critical[0] for name in names), critical[0]

        accepted = world.start_worker(POINTS_KAFKA__ACCEPT_LOWER_REPLICATION="true")
        wait_until(lambda: "running anyway" in accepted.log(), 60, "the warning",
                   accepted.log_tail)  # fmt: skip
        time.sleep(3)
        assert accepted.running, accepted.log_tail()
    finally:
        world.stop_all()

"""Unit tests for the pure parts of devstack (no broker, no database, no downloads)."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devstack import kafka, postgres, process
from devstack.cli import app, render_env
from devstack.errors import UsageError
from devstack.paths import REPO_ROOT, StackConfig, load_config

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, *, kafka_port: int = 9092, pg_port: int = 55432) -> StackConfig:
    return StackConfig(
        state_dir=tmp_path / "stack",
        cache_dir=tmp_path / "cache",
        kafka_port=kafka_port,
        pg_port=pg_port,
        is_root=False,
    )


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


# --- server.properties -----------------------------------------------------------------------


def test_server_properties_sets_every_replication_and_min_isr_key_to_one(tmp_path: Path) -> None:
    """On one node every internal-topic replication factor and min.isr must be 1, or groups and
    transactions never come up."""
    props = _properties(kafka.render_server_properties(_config(tmp_path)))
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "default.replication.factor",
        "min.insync.replicas",
    ):
        assert props[key] == "1", key


def test_server_properties_single_kraft_node_on_loopback_with_controller_on_next_port(
    tmp_path: Path,
) -> None:
    """The broker listens on 127.0.0.1:<port>, the KRaft controller on <port>+1, both roles in
    one node, data under the state dir."""
    config = _config(tmp_path, kafka_port=19092)
    props = _properties(kafka.render_server_properties(config))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path / "stack" / "kafka" / "data")


def test_server_properties_fast_small_test_broker_without_auto_create(tmp_path: Path) -> None:
    """No rebalance delay, 4 partitions for internal topics and defaults, and no auto-created
    topics (we create topics explicitly with our partition count)."""
    props = _properties(kafka.render_server_properties(_config(tmp_path)))
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["offsets.topic.num.partitions"] == "4"
    assert props["transaction.state.log.num.partitions"] == "4"
    assert props["num.partitions"] == "4"
    assert props["auto.create.topics.enable"] == "false"


def test_logged_version_reads_the_first_kafka_version_line() -> None:
    """The version comes from the broker's own 'Kafka version: X' startup line."""
    log = (
        "[2026-01-01 00:00:00,000] WARN something (x)\n"
        "[2026-01-01 00:00:01,000] INFO Kafka version: 4.1.1 (org.apache.kafka...AppInfoParser)\n"
        "[2026-01-01 00:00:02,000] INFO Kafka version: 9.9.9 (later client)\n"
    )
    assert kafka.logged_version(log) == "4.1.1"
    assert kafka.logged_version("no version here") is None


# --- kafka-features describe ----------------------------------------------------------------


def test_metadata_version_is_read_from_kafka_features_describe() -> None:
    """`status` reports the finalized metadata.version that Kafka's own FeatureCommand prints."""
    output = (
        "Feature: kraft.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\t"
        "FinalizedVersionLevel: 0\tEpoch: 7\n"
        "Feature: metadata.version\tSupportedMinVersion: 3.3-IV3\tSupportedMaxVersion: 4.1-IV1\t"
        "FinalizedVersionLevel: 4.1-IV1\tEpoch: 7\n"
    )
    assert kafka.parse_metadata_version(output) == "4.1-IV1"
    assert kafka.parse_metadata_version("Error while describing features") is None


# --- ports and processes ---------------------------------------------------------------------


def test_port_taken_by_a_listening_socket_is_detected_and_freed_after_close() -> None:
    """A port someone else listens on is reported taken; once they close it, it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert process.port_is_free("127.0.0.1", port) is False
        assert process.port_answers("127.0.0.1", port) is True
    assert process.port_is_free("127.0.0.1", port) is True


def test_port_taken_on_all_interfaces_counts_as_taken_on_loopback() -> None:
    """A listener on 0.0.0.0 blocks our 127.0.0.1 bind too, so it is reported taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("0.0.0.0", 0))
        other.listen()
        assert process.port_is_free("127.0.0.1", other.getsockname()[1]) is False


def test_pid_listens_on_names_the_process_owning_the_listener() -> None:
    """The listener's owner is found by PID (so `up` reuses only a server of ours)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert process.pid_listens_on(os.getpid(), port) is True
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert process.pid_listens_on(child.pid, port) is False
        finally:
            child.kill()
            child.wait()


def test_pid_file_round_trip_and_dead_pid_detection(tmp_path: Path) -> None:
    """PID files read back what was written, garbage reads as None, and an exited child is not
    alive."""
    pid_file = tmp_path / "x.pid"
    assert process.read_pid(pid_file) is None
    process.write_pid(pid_file, 1234)
    assert process.read_pid(pid_file) == 1234
    pid_file.write_text("not a pid")
    assert process.read_pid(pid_file) is None
    assert process.pid_alive(os.getpid()) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process.pid_alive(child.pid) is False


def test_state_json_updates_one_service_and_removes_it(tmp_path: Path) -> None:
    """state.json keeps each service's entry independently; None removes one."""
    path = tmp_path / "state.json"
    process.update_state(path, "kafka", {"pid": 1})
    process.update_state(path, "postgres", {"pid": 2})
    process.update_state(path, "kafka", None)
    assert process.read_state(path) == {"postgres": {"pid": 2}}


# --- env output and config -------------------------------------------------------------------


def test_env_prints_export_lines_for_kafka_and_each_database(tmp_path: Path) -> None:
    """`env` prints one `export NAME=value` line per variable, for a shell to eval."""
    text = render_env(_config(tmp_path, kafka_port=19092, pg_port=15432))
    lines = text.splitlines()
    assert text.endswith("\n")
    assert all(re.fullmatch(r"export [A-Z_]+=\S+", line) for line in lines)
    values = dict(shlex.split(line)[1].split("=", 1) for line in lines)
    assert values == {
        "POINTS_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19092",
        "POINTS_TEST_DATABASE_URL": "postgresql+psycopg://points:points@127.0.0.1:15432/points_test",
        "POINTS_STACK_PG_URL": "postgresql+psycopg://points:points@127.0.0.1:15432/points",
        "POINTS_BENCH_PG_URL": "postgresql+psycopg://points:points@127.0.0.1:15432/points_bench",
    }


def test_env_command_output_evaluates_in_a_posix_shell() -> None:
    """`eval "$(python -m devstack env)"` sets the variables (what the Makefile does)."""
    result = CliRunner().invoke(app, ["env"], env={"POINTS_STACK_KAFKA_PORT": "29092"})
    assert result.exit_code == 0, result.output
    shell = subprocess.run(
        ["sh", "-c", 'eval "$1"; echo "$POINTS_KAFKA__BOOTSTRAP_SERVERS"', "sh", result.stdout],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.strip() == "127.0.0.1:29092"


def test_malformed_port_variable_is_a_usage_error_with_exit_code_2() -> None:
    """A non-numeric or out-of-range POINTS_STACK_*_PORT exits 2 with a message, no traceback."""
    with pytest.raises(UsageError):
        load_config({"POINTS_STACK_PG_PORT": "abc"})
    with pytest.raises(UsageError):
        load_config({"POINTS_STACK_KAFKA_PORT": "65535"})  # controller would need 65536
    result = CliRunner().invoke(app, ["env"], env={"POINTS_STACK_PG_PORT": "abc"})
    assert result.exit_code == 2
    assert "POINTS_STACK_PG_PORT" in result.output


def test_unknown_only_value_is_a_usage_error() -> None:
    """`up --only <something else>` is rejected by the CLI parser with exit code 2."""
    result = CliRunner().invoke(app, ["up", "--only", "redis"])
    assert result.exit_code == 2


def test_config_defaults_state_dir_in_repo_and_cache_in_home() -> None:
    """Defaults: state in <repo>/.stack, jars in ~/.cache/points-exchange, ports 9092/55432."""
    config = load_config({"HOME": "/home/dev"}, is_root=False)
    assert config.state_dir == REPO_ROOT / ".stack"
    assert config.cache_dir == Path("/home/dev/.cache/points-exchange")
    assert config.kafka_libs == Path("/home/dev/.cache/points-exchange/kafka-4.1.1/libs")
    assert (config.kafka_port, config.kafka_controller_port, config.pg_port) == (9092, 9093, 55432)
    assert config.pg_data_dir == REPO_ROOT / ".stack" / "postgres" / "data"


def test_config_as_root_puts_postgres_data_under_tmp_per_port(tmp_path: Path) -> None:
    """As root, PostgreSQL data lives in /tmp/points-exchange-pg-<port> (the postgres OS user
    may not be able to enter the repo); the rest honours the POINTS_STACK_* variables."""
    env = {
        "POINTS_STACK_DIR": str(tmp_path / "s"),
        "POINTS_STACK_CACHE": str(tmp_path / "c"),
        "POINTS_STACK_PG_PORT": "15432",
    }
    config = load_config(env, is_root=True)
    assert config.pg_data_dir == Path("/tmp/points-exchange-pg-15432/data")
    assert config.state_dir == tmp_path / "s"
    assert config.cache_dir == tmp_path / "c"


# --- PostgreSQL ------------------------------------------------------------------------------


def test_postgres_conf_listens_on_loopback_with_socket_in_data_dir(tmp_path: Path) -> None:
    """Our postgresql.conf include: loopback only, socket in the data dir, fsync on, 256MB
    shared_buffers, 200 connections, and the configured port."""
    config = _config(tmp_path, pg_port=15432)
    conf = postgres.render_conf(config)
    assert "port = 15432" in conf
    assert "listen_addresses = '127.0.0.1'" in conf
    assert f"unix_socket_directories = '{config.pg_data_dir}'" in conf
    assert "fsync = on" in conf
    assert "shared_buffers = 256MB" in conf
    assert "max_connections = 200" in conf
    # per-statement times for the pipeline bench's account of PostgreSQL's CPU
    assert "shared_preload_libraries = 'pg_stat_statements'" in conf


def test_postgres_conf_keeps_durability_and_sizes_the_wal_like_production(
    tmp_path: Path,
) -> None:
    """Benchmarks run on production-like WAL settings (checkpoints apart, compressed full-page
    images, no JIT) without giving up durable commits."""
    conf = postgres.render_conf(_config(tmp_path, pg_port=15432))
    assert "max_wal_size = 4GB" in conf
    assert "checkpoint_timeout = 15min" in conf
    assert "wal_compression = lz4" in conf
    assert "jit = off" in conf
    assert "synchronous_commit" not in conf  # stays on (the default)
    assert "fsync = on" in conf


def test_find_bin_dir_prefers_the_newest_major_with_both_tools(tmp_path: Path) -> None:
    """Among /usr/lib/postgresql/<major>/bin dirs, the newest one holding initdb and pg_ctl wins;
    a dir missing pg_ctl is skipped."""
    for major, tools in (
        ("13", ("initdb", "pg_ctl")),
        ("15", ("initdb", "pg_ctl")),
        ("16", ("initdb",)),
    ):
        bin_dir = tmp_path / major / "bin"
        bin_dir.mkdir(parents=True)
        for tool in tools:
            (bin_dir / tool).touch()
    assert postgres.find_bin_dir(str(tmp_path / "*" / "bin")) == tmp_path / "15" / "bin"


# --- cluster and secured layouts -------------------------------------------------------------


def test_three_broker_layout_ports_and_replication(tmp_path: Path) -> None:
    """`up --brokers 3`: 3 client ports, then 3 controller ports; every node is a voter and
    topics default to RF 3 with min.insync.replicas 2. One node keeps port P and P + 1."""
    config = _config(tmp_path, kafka_port=19000)
    layout = kafka.Layout(brokers=3)
    ports = [(n.port, n.controller_port) for n in kafka.nodes(config, layout)]
    assert ports == [(19000, 19003), (19001, 19004), (19002, 19005)]
    assert kafka.bootstrap(config, layout) == "127.0.0.1:19000,127.0.0.1:19001,127.0.0.1:19002"
    assert [(n.port, n.controller_port) for n in kafka.nodes(config, kafka.Layout())] == [
        (19000, 19001)
    ]
    node2 = kafka.nodes(config, layout)[1]
    props = _properties(kafka.render_server_properties(config, layout, node2))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19003,2@127.0.0.1:19004,3@127.0.0.1:19005"
    )
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3"
    with pytest.raises(UsageError):
        kafka.Layout(brokers=2)


def test_secured_node_has_sasl_ssl_clients_and_only_admin_as_super_user(tmp_path: Path) -> None:
    """`up --secure`: clients on SASL_SSL (SCRAM-SHA-512), replication and the quorum on
    loopback listeners as the devstack admin, StandardAuthorizer with admin the only super user."""
    config = _config(tmp_path, kafka_port=19000)
    props = _properties(kafka.render_server_properties(config, kafka.Layout(secure=True)))
    assert props["listeners"] == (
        "CLIENT://127.0.0.1:19000,INTERNAL://127.0.0.1:19002,CONTROLLER://127.0.0.1:19001"
    )
    assert "CLIENT:SASL_SSL" in props["listener.security.protocol.map"]
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"


def test_partner_acls_are_its_own_topics_and_group_only() -> None:
    """A partner may write partner.<id>.events, read partner.<id>.requests and group
    partner.<id>; nothing prefixed, nothing else."""
    from devstack import kafka_security

    grants = {
        (g.resource, g.name, g.pattern, g.operation) for g in kafka_security.partner_acls("acme")
    }
    assert grants == {
        ("topic", "partner.acme.events", "literal", "write"),
        ("topic", "partner.acme.events", "literal", "describe"),
        ("topic", "partner.acme.requests", "literal", "read"),
        ("topic", "partner.acme.requests", "literal", "describe"),
        ("group", "partner.acme", "literal", "read"),
    }


def test_both_worker_principals_may_create_and_write_every_topic_the_workers_create() -> None:
    """Each worker creates every source and output topic at start and exits 78 when one is
    refused; a topic added to the settings (as customer.nudges was) must get its ACLs on the
    secured stack too, and the push service may read the nudges and nothing else."""
    from devstack import kafka_security
    from points.settings import TopicNames

    topics = TopicNames()
    for user in ("worker", "partner-worker"):
        granted = {
            (g.name, g.operation) for g in kafka_security.BANK_ACLS[user] if g.resource == "topic"
        }
        for topic in topics.source_topics() + topics.output_topics():
            for operation in ("create", "write", "describe"):
                assert (topic, operation) in granted, (user, topic, operation)
    push = {(g.resource, g.name, g.operation) for g in kafka_security.BANK_ACLS["push"]}
    assert push == {
        ("topic", topics.customer_nudges, "read"),
        ("topic", topics.customer_nudges, "describe"),
        ("group", kafka_security.PUSH_GROUP, "read"),
    }

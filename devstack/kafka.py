"""Apache Kafka (KRaft, broker + controller in each JVM) built from Maven Central jars.

By default one plaintext node (what `make demo` and `make test` use). `up --brokers 3` runs a
3-node cluster (every node a voter; topics default to RF 3 and min.insync.replicas 2), and
`up --secure` puts SASL_SSL with SCRAM-SHA-512 and ACLs in front of it (devstack.kafka_security).
The layout is remembered in the state dir, so `status`, `down` and `env` act on what `up` built.

No Docker engine and no Apache download site here: Maven resolves ``kafka_2.13`` plus a log4j2
backend into a per-user cache, reused by every clone. See docs/local-stack.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import kafka_security, process
from devstack.errors import StackError, UsageError
from devstack.paths import (
    HOST,
    KAFKA_LOG4J2_TEMPLATE,
    KAFKA_POM,
    KAFKA_TOOLS_POM,
    KAFKA_VERSION,
    StackConfig,
)
from points.settings import KafkaSettings

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
# Written last, after Maven succeeded: a libs folder without it is a partial download.
LIBS_MARKER = ".complete"
JAVA_HINT = "install Java 17: apt-get install -y openjdk-17-jre-headless"
MAVEN_HINT = "install Maven: apt-get install -y maven"
PORT_HINT = (
    "set POINTS_STACK_KAFKA_PORT to a free port (a stack of N nodes uses N client ports from it, "
    "then N controller ports, then N internal ports when secure)"
)
VERSION_LINE = re.compile(r"Kafka version: (\S+)")
# `kafka-features describe`: "Feature: metadata.version<TAB>...FinalizedVersionLevel: 4.1-IV1".
METADATA_VERSION_LINE = re.compile(r"Feature: metadata\.version\b.*?FinalizedVersionLevel: (\S+)")
FEATURES_TIMEOUT_S = 60.0
MAX_BROKERS = 3


@dataclass(frozen=True)
class KafkaStatus:
    state: str  # running | unresponsive | stopped
    pid: int | None
    address: str
    version: str | None = None
    metadata_version: str | None = None
    detail: str = ""
    pids: tuple[int, ...] = ()  # every node's pid when more than one runs


# --- layout: how many nodes, secured or not --------------------------------------------------


@dataclass(frozen=True)
class Layout:
    brokers: int = 1
    secure: bool = False

    def __post_init__(self) -> None:
        if self.brokers not in (1, MAX_BROKERS):
            raise UsageError(f"--brokers must be 1 or {MAX_BROKERS}, not {self.brokers}")

    @property
    def replication_factor(self) -> int:
        return self.brokers

    @property
    def min_insync_replicas(self) -> int:
        # 3 nodes: writes survive one broker down; 1 node cannot ask for more than itself.
        return 2 if self.brokers >= 3 else 1

    def describe(self) -> str:
        nodes = f"{self.brokers} broker" + ("s" if self.brokers > 1 else "")
        return nodes + (", SASL_SSL" if self.secure else ", plaintext")


def _layout_file(config: StackConfig) -> Path:
    return config.kafka_dir / "layout.json"


def saved_layout(config: StackConfig) -> Layout:
    """The layout the last `up` built (the default single plaintext node when none was saved)."""
    try:
        data = json.loads(_layout_file(config).read_text())
        return Layout(brokers=int(data["brokers"]), secure=bool(data["secure"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Layout()


def _save_layout(config: StackConfig, layout: Layout) -> None:
    config.kafka_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"brokers": layout.brokers, "secure": layout.secure}) + "\n"
    _layout_file(config).write_text(text)


@dataclass(frozen=True)
class Node:
    """One KRaft node's ports and files. Node 1 keeps the single-node paths of older stacks."""

    node_id: int
    port: int
    controller_port: int
    internal_port: int | None
    dir: Path
    pid_file: Path

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log(self) -> Path:
        return self.dir / "kafka.log"


def nodes(config: StackConfig, layout: Layout) -> list[Node]:
    """Ports: N client ports from POINTS_STACK_KAFKA_PORT, then N controller ports, then (secure)
    N internal ports -- so the default single node keeps client port P and controller P + 1."""
    n = layout.brokers
    result = []
    for i in range(n):
        first = i == 0
        result.append(Node(
            node_id=i + 1,
            port=config.kafka_port + i,
            controller_port=config.kafka_port + n + i,
            internal_port=config.kafka_port + 2 * n + i if layout.secure else None,
            dir=config.kafka_dir if first else config.kafka_dir / f"node-{i + 1}",
            pid_file=config.kafka_pid_file if first else config.state_dir / f"kafka-{i + 1}.pid",
        ))  # fmt: skip
    return result


def bootstrap(config: StackConfig, layout: Layout) -> str:
    return ",".join(f"{HOST}:{node.port}" for node in nodes(config, layout))


def secrets_dir(config: StackConfig) -> Path:
    return config.kafka_dir / "secrets"


def tls_dir(config: StackConfig) -> Path:
    return config.kafka_dir / "tls"


def client_config(config: StackConfig, layout: Layout, user: str = "admin") -> dict[str, str]:
    """librdkafka properties for ``user`` on this stack (plaintext: just the bootstrap list)."""
    servers = bootstrap(config, layout)
    if not layout.secure:
        return {"bootstrap.servers": servers}
    password_path = kafka_security.password_file(secrets_dir(config), user)
    if not password_path.exists():
        raise StackError(f"no SCRAM user {user!r} on this stack (no {password_path})")
    ca_pem = tls_dir(config) / "ca.pem"
    return kafka_security.librdkafka_config(
        servers, ca_pem, user, password_path.read_text().strip()
    )


def render_server_properties(
    config: StackConfig, layout: Layout | None = None, node: Node | None = None
) -> str:
    """server.properties for one KRaft node on 127.0.0.1, tuned for a small test box."""
    layout = layout or Layout()
    all_nodes = nodes(config, layout)
    node = node or all_nodes[0]
    rf, min_isr = str(layout.replication_factor), str(layout.min_insync_replicas)
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in all_nodes)
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        # Static voters: `format` then needs no --standalone / --initial-controllers flag.
        "controller.quorum.voters": voters,
        **_listener_settings(config, layout, node),
        "log.dirs": str(node.data_dir),
        # Internal topics ask for as many replicas as there are nodes: on one node the defaults
        # (3) would leave consumer groups and transactions waiting for brokers that never come.
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        # Tests start and stop consumer groups constantly; do not wait 3 s before each rebalance.
        "group.initial.rebalance.delay.ms": "0",
        # Few partitions for internal topics: they are created on first use, which should be quick.
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.num.partitions": "4",
        # Topics are created explicitly with our partition count (faust raises PartitionsMismatch
        # when a source topic was auto-created with a different one).
        "auto.create.topics.enable": "false",
        "num.partitions": "4",
    }
    lines = ["# Written by devstack (python -m devstack up); edits are overwritten on each up."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _listener_settings(config: StackConfig, layout: Layout, node: Node) -> dict[str, str]:
    client = f"{HOST}:{node.port}"
    controller = f"{HOST}:{node.controller_port}"
    if not layout.secure:
        return {
            "listeners": f"PLAINTEXT://{client},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{client}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        }
    internal = f"{HOST}:{node.internal_port}"
    admin = kafka_security.ADMIN
    password = kafka_security.ensure_password(secrets_dir(config), admin)
    # Replication and the quorum authenticate as the devstack admin with PLAIN on loopback-only
    # listeners: SCRAM credentials live in the metadata the controllers serve, so the quorum
    # cannot use them itself.
    plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{admin}" password="{password}" user_{admin}="{password}";'
    )
    ca_pem = tls_dir(config) / "ca.pem"
    broker_pem = tls_dir(config) / "broker.pem"
    return {
        "listeners": f"CLIENT://{client},INTERNAL://{internal},CONTROLLER://{controller}",
        "advertised.listeners": f"CLIENT://{client},INTERNAL://{internal}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": (
            "CLIENT:SASL_SSL,INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
        ),
        "listener.name.client.sasl.enabled.mechanisms": kafka_security.MECHANISM,
        "listener.name.client.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.internal.plain.sasl.jaas.config": plain,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain,
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(broker_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca_pem),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{admin}",
        "allow.everyone.if.no.acl.found": "false",
    }


def logged_version(log_text: str) -> str | None:
    """The version the broker JVM logged at startup ("Kafka version: X"), first occurrence."""
    match = VERSION_LINE.search(log_text)
    return match.group(1) if match else None


# --- prerequisites ---------------------------------------------------------------------------


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(f"java not found on PATH: {JAVA_HINT}")
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    # `java -version` prints e.g. 'openjdk version "17.0.15"' (or "1.8.0_x" for Java 8) to stderr.
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):
            major = int(match.group(2))
        if major < 17:
            raise StackError(
                f"Kafka {KAFKA_VERSION} needs Java 17+, found Java {major}: {JAVA_HINT}"
            )
    return java


def ensure_libs(config: StackConfig) -> Path:
    """The broker's jar folder in the cache, downloading it with Maven on first use."""
    return _ensure_jars(config, config.kafka_libs, KAFKA_POM)


def ensure_tools(config: StackConfig) -> Path:
    """Kafka's CLI tools' jar folder (kafka-tools), downloaded with Maven on first use."""
    return _ensure_jars(config, config.kafka_tools_libs, KAFKA_TOOLS_POM)


def _ensure_jars(config: StackConfig, libs: Path, pom_template: Path) -> Path:
    if (libs / LIBS_MARKER).exists():
        return libs
    config.kafka_home.mkdir(parents=True, exist_ok=True)
    # Serialise clones that start cold at the same time; the second one finds the marker.
    with open(config.kafka_home / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / LIBS_MARKER).exists():
            return libs
        _download(config, libs, pom_template)
    return libs


def _download(config: StackConfig, libs: Path, pom_template: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"mvn not found on PATH (needed once to fetch Kafka's jars): {MAVEN_HINT}")
    # Run Maven on a copy in the cache: nothing (target/, etc.) lands in the repo or site-packages.
    pom = config.kafka_home / pom_template.name
    shutil.copyfile(pom_template, pom)
    shutil.rmtree(libs, ignore_errors=True)
    print(f"Downloading Kafka {KAFKA_VERSION} jars with Maven into {libs} (once per machine)...")
    result = subprocess.run(
        [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
        cwd=config.kafka_home, capture_output=True, text=True, check=False,
    )  # fmt: skip
    jars = list(libs.glob("kafka*.jar")) if libs.exists() else []
    if result.returncode != 0 or not jars:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise StackError(
            f"Maven could not download Kafka {KAFKA_VERSION} (exit {result.returncode}); check "
            "access to Maven Central (or the mirrors in ~/.m2/settings.xml) and retry. "
            "('No plugin found for prefix dependency' means no repository was reachable.)\n"
            + output
        )
    (libs / LIBS_MARKER).write_text(f"kafka {KAFKA_VERSION}\n")


# --- files in the state dir ------------------------------------------------------------------


def write_config_files(config: StackConfig, layout: Layout) -> None:
    if layout.secure:
        kafka_security.ensure_certificates(tls_dir(config), HOST)
    for node in nodes(config, layout):
        node.dir.mkdir(parents=True, exist_ok=True)
        node.properties.write_text(render_server_properties(config, layout, node))
    config.kafka_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(KAFKA_LOG4J2_TEMPLATE, config.kafka_log4j2)


def _java_base(java: str, libs: Path, config: StackConfig, heap: list[str]) -> list[str]:
    return [
        java, *heap, "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile=file:{config.kafka_log4j2}",
        "-cp", f"{libs}/*",  # the JVM expands the wildcard itself; no shell involved
    ]  # fmt: skip


def _reset_if_layout_changed(config: StackConfig, layout: Layout) -> None:
    """A stack formatted for another layout cannot be reused: its data is throwaway, start over."""
    if saved_layout(config) == layout or not config.kafka_data_dir.exists():
        return
    print(f"kafka: the stack was built as {saved_layout(config).describe()}; "
          f"wiping its Kafka data for {layout.describe()}")  # fmt: skip
    for node in nodes(config, Layout(brokers=MAX_BROKERS, secure=True)):
        shutil.rmtree(node.data_dir, ignore_errors=True)
    shutil.rmtree(secrets_dir(config), ignore_errors=True)
    shutil.rmtree(tls_dir(config), ignore_errors=True)


def format_storage(config: StackConfig, java: str, libs: Path, layout: Layout) -> bool:
    """Format every node's KRaft log dir once, with one cluster id (and the SCRAM users when
    secure); True when it formatted (False: already formatted)."""
    todo = [n for n in nodes(config, layout) if not (n.data_dir / "meta.properties").exists()]
    if not todo:
        return False
    base = _java_base(java, libs, config, ["-Xmx256m"])
    uuid = subprocess.run(
        [*base, "kafka.tools.StorageTool", "random-uuid"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    cluster_id = uuid.stdout.strip().splitlines()[-1] if uuid.stdout.strip() else ""
    if uuid.returncode != 0 or not cluster_id:
        raise StackError(f"kafka StorageTool random-uuid failed:\n{uuid.stdout}{uuid.stderr}")
    scram: list[str] = []
    if layout.secure:
        users = (kafka_security.ADMIN, *kafka_security.BANK_USERS)
        scram = kafka_security.scram_format_args(secrets_dir(config), users)
    for node in todo:
        result = subprocess.run(
            [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(node.properties), *scram],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"kafka StorageTool format failed:\n{result.stdout}{result.stderr}")
    return True


# --- our processes ---------------------------------------------------------------------------


def _is_ours(node: Node, pid: int) -> bool:
    """The PID still runs *our* broker: a kafka.Kafka JVM on this node's server.properties."""
    argv = process.cmdline(pid)
    if argv is None:  # cannot read its command line: trust the PID file
        return process.pid_alive(pid)
    return "kafka.Kafka" in argv and str(node.properties) in argv


def _node_pid(node: Node) -> int | None:
    """PID of the node this stack started, if it still runs; clears a stale PID file."""
    pid = process.read_pid(node.pid_file)
    if pid is None:
        return None
    if process.pid_alive(pid) and _is_ours(node, pid):
        return pid
    node.pid_file.unlink(missing_ok=True)
    return None


def our_pid(config: StackConfig) -> int | None:
    """PID of the (first) broker this stack started, if it still runs."""
    return _node_pid(nodes(config, saved_layout(config))[0])


def _check_ports_free(node: Node) -> None:
    ports = [(node.port, "Kafka"), (node.controller_port, "controller")]
    if node.internal_port is not None:
        ports.append((node.internal_port, "internal listener"))
    for port, role in ports:
        if not process.port_is_free(HOST, port):
            raise StackError(
                f"port {port} ({role}) is in use by a process this stack did not start: "
                f"stop it, or {PORT_HINT}"
            )


def client_settings(config: StackConfig, layout: Layout, user: str = "admin") -> KafkaSettings:
    """The product's connection settings (POINTS_KAFKA__*) for ``user`` on this stack."""
    librdkafka = client_config(config, layout, user)
    if not layout.secure:
        return KafkaSettings(bootstrap_servers=librdkafka["bootstrap.servers"])
    return KafkaSettings(
        bootstrap_servers=librdkafka["bootstrap.servers"],
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=librdkafka["sasl.username"],
        sasl_password_file=kafka_security.password_file(secrets_dir(config), user),
        ssl_cafile=Path(librdkafka["ssl.ca.location"]),
    )


async def _aiokafka_broker_count(kafka_settings: KafkaSettings) -> int:
    # The product's own client factory: the devstack checks connect as the product does.
    from streams.kafka_clients import admin_client  # heavy import, only when needed

    admin = admin_client(kafka_settings, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster.get("brokers") or [])
    except Exception:  # any failure just means "not ready yet"
        return 0
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def broker_count(config: StackConfig, layout: Layout | None = None) -> int:
    """How many brokers the cluster reports (0 when it does not answer)."""
    layout = layout or saved_layout(config)
    # aiokafka logs every refused connection at ERROR; while polling those are expected noise.
    aiokafka_logger = logging.getLogger("aiokafka")
    level = aiokafka_logger.level
    aiokafka_logger.setLevel(logging.CRITICAL + 1)
    try:
        return asyncio.run(_aiokafka_broker_count(client_settings(config, layout)))
    finally:
        aiokafka_logger.setLevel(level)


def answers(config: StackConfig) -> bool:
    """True when the cluster answers a metadata request (admin describe_cluster)."""
    return broker_count(config) > 0


def _wait_ready(config: StackConfig, layout: Layout, pids: dict[int, int]) -> None:
    """Until every node is registered with the cluster (all of them, not just one answering)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    all_nodes = {n.node_id: n for n in nodes(config, layout)}
    while time.monotonic() < deadline:
        for node_id, pid in pids.items():
            node = all_nodes[node_id]
            if not process.pid_alive(pid):
                node.pid_file.unlink(missing_ok=True)
                raise StackError(
                    f"Kafka node {node_id} exited during startup; last lines of {node.log}:\n"
                    + process.tail(node.log)
                )
        first = all_nodes[1]
        if process.port_answers(HOST, first.port) and broker_count(config, layout) >= len(
            all_nodes
        ):
            return
        time.sleep(0.5)
    raise StackError(
        f"Kafka did not answer on {bootstrap(config, layout)} with {layout.brokers} broker(s) "
        f"within {READY_TIMEOUT_S:.0f} s (left running; `down` stops it); last lines of "
        f"{all_nodes[1].log}:\n" + process.tail(all_nodes[1].log)
    )


def start(config: StackConfig, layout: Layout | None = None) -> tuple[KafkaStatus, bool]:
    """Start the cluster unless ours already runs. Returns (status, started_now).

    ``layout`` None: the layout that runs, else the default single plaintext node."""
    running = saved_layout(config)
    pids = {n.node_id: pid for n in nodes(config, running) if (pid := _node_pid(n)) is not None}
    layout = layout or (running if pids else Layout())
    if pids and layout != running:
        raise StackError(
            f"this stack's Kafka runs as {running.describe()}; run "
            "`python -m devstack down --only kafka` before `up` with another layout"
        )
    all_nodes = nodes(config, layout)
    if len(pids) == len(all_nodes):
        for node in all_nodes:
            if not process.pid_listens_on(pids[node.node_id], node.port):
                raise StackError(
                    f"this stack's Kafka node {node.node_id} (pid {pids[node.node_id]}) runs but "
                    f"does not listen on port {node.port}; run "
                    "`python -m devstack down --only kafka` first"
                )
        _wait_ready(config, layout, pids)  # instant when it answers; waits out a slow start
        if layout.secure:
            grant_bank_acls(config, layout)
        return status(config), False
    for node in all_nodes:
        if node.node_id not in pids:
            _check_ports_free(node)
    java = find_java()
    libs = ensure_libs(config)
    _reset_if_layout_changed(config, layout)
    write_config_files(config, layout)
    format_storage(config, java, libs, layout)
    _save_layout(config, layout)
    # Several JVMs on a small machine: smaller heaps for a cluster than for one node.
    heap = ["-Xms256m", "-Xmx512m"] if layout.brokers == 1 else ["-Xms192m", "-Xmx384m"]
    for node in all_nodes:
        if node.node_id in pids:
            continue
        argv = [*_java_base(java, libs, config, heap), "kafka.Kafka", str(node.properties)]
        pids[node.node_id] = process.spawn_detached(argv, node.log, cwd=node.dir)
        process.write_pid(node.pid_file, pids[node.node_id])
    _wait_ready(config, layout, pids)
    if layout.secure:
        grant_bank_acls(config, layout)
    return status(config), True


def grant_bank_acls(config: StackConfig, layout: Layout) -> None:
    """The bank's own principals get their ACLs (idempotent; created users exist from format)."""
    admin = client_config(config, layout, kafka_security.ADMIN)
    for user, grants in kafka_security.BANK_ACLS.items():
        kafka_security.create_acls(admin, user, grants)


def provision_partner(config: StackConfig, partner_id: str) -> str:
    """Create (or reset) a partner's SCRAM user and its ACLs on the running secured stack.

    Returns the user name; its password is in the secrets dir (created there on first use)."""
    layout = saved_layout(config)
    if not layout.secure:
        raise StackError(
            "partner principals need a secured stack: `python -m devstack up --secure`"
        )
    if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]{0,31}", partner_id):
        raise UsageError(f"partner id {partner_id!r} must match [a-z0-9][a-z0-9_-]{{0,31}}")
    if broker_count(config, layout) == 0:
        raise StackError(
            "the secured Kafka stack does not answer: `python -m devstack up --secure`"
        )
    user = kafka_security.partner_user(partner_id)
    password = kafka_security.ensure_password(secrets_dir(config), user)
    admin = client_config(config, layout, kafka_security.ADMIN)
    kafka_security.upsert_scram_user(admin, user, password)
    kafka_security.create_acls(admin, user, kafka_security.partner_acls(partner_id))
    return user


def stop(config: StackConfig) -> str:
    layout = saved_layout(config)
    running = [(node, pid) for node in nodes(config, layout) if (pid := _node_pid(node))]
    # SIGTERM every node first: one by one, the last nodes lose their quorum and their
    # controlled shutdown waits for a controller that is gone (30 s, then SIGKILL).
    for _node, pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    stopped = []
    for node, pid in running:
        killed = process.terminate(pid, STOP_TIMEOUT_S)
        node.pid_file.unlink(missing_ok=True)
        how = f"killed after {STOP_TIMEOUT_S:.0f} s" if killed else "stopped"
        stopped.append(
            f"{how} (pid {pid})"
            if layout.brokers == 1
            else f"node {node.node_id} {how} (pid {pid})"
        )
    return "kafka: " + ("; ".join(stopped) if stopped else "not running")


def metadata_version(config: StackConfig) -> str | None:
    """The cluster's finalized ``metadata.version`` as Kafka's own `kafka-features describe` says.

    None when the tool could not ask (it needs the broker up; its JVM takes a few seconds).
    """
    layout = saved_layout(config)
    java = find_java()
    classpath = f"{ensure_libs(config)}/*:{ensure_tools(config)}/*"
    command = [java, "-Xmx128m", f"-Dlog4j2.configurationFile=file:{config.kafka_log4j2}",
               "-cp", classpath, "org.apache.kafka.tools.FeatureCommand",
               "--bootstrap-server", bootstrap(config, layout)]  # fmt: skip
    if layout.secure:
        command += ["--command-config", str(_java_client_properties(config, layout))]
    try:
        result = subprocess.run(
            [*command, "describe"],
            capture_output=True, text=True, check=False, timeout=FEATURES_TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    return parse_metadata_version(result.stdout)


def _java_client_properties(config: StackConfig, layout: Layout) -> Path:
    """Admin client properties (Java) for Kafka's CLI tools on the secured stack, 0600."""
    settings = client_config(config, layout, kafka_security.ADMIN)
    path = secrets_dir(config) / "admin-client.properties"
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{settings["sasl.username"]}" password="{settings["sasl.password"]}";'
    )
    text = (
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={kafka_security.MECHANISM}\n"
        f"sasl.jaas.config={jaas}\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={settings['ssl.ca.location']}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def parse_metadata_version(features_output: str) -> str | None:
    """The finalized ``metadata.version`` in `kafka-features describe` output, if it names one."""
    match = METADATA_VERSION_LINE.search(features_output)
    return match.group(1) if match else None


def status(config: StackConfig) -> KafkaStatus:
    """Ask the cluster itself: liveness by PID, an admin metadata request, version from its log."""
    layout = saved_layout(config)
    all_nodes = nodes(config, layout)
    address = bootstrap(config, layout)
    pids = [pid for n in all_nodes if (pid := _node_pid(n)) is not None]
    if not pids:
        first = all_nodes[0].port
        detail = "" if process.port_is_free(HOST, first) else "port in use, not ours"
        return KafkaStatus("stopped", None, address, detail=detail)
    count = broker_count(config, layout)
    detail = "" if layout == Layout() else layout.describe()
    if count == 0:
        return KafkaStatus("unresponsive", pids[0], address, detail="no answer to describe_cluster",
                           pids=tuple(pids))  # fmt: skip
    if count < len(all_nodes) or len(pids) < len(all_nodes):
        detail = f"{count} of {len(all_nodes)} brokers up" + (f"; {detail}" if detail else "")
    version = None
    with contextlib.suppress(OSError):
        version = logged_version(all_nodes[0].log.read_text(errors="replace"))
    return KafkaStatus("running", pids[0], address, version, metadata_version(config), detail,
                       tuple(pids))  # fmt: skip


def state_entry(config: StackConfig, st: KafkaStatus) -> dict[str, object]:
    layout = saved_layout(config)
    return {
        "port": config.kafka_port,
        "controller_port": nodes(config, layout)[0].controller_port,
        "bootstrap_servers": bootstrap(config, layout),
        "brokers": layout.brokers,
        "secure": layout.secure,
        "pid": st.pid,
        "pids": list(st.pids),
        "version": st.version,
        "expected_version": KAFKA_VERSION,
        "metadata_version": st.metadata_version,
        "log": str(config.kafka_log),
        "data_dir": str(config.kafka_data_dir),
    }

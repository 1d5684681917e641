"""A single-node Apache Kafka (KRaft, broker + controller in one JVM) built from Maven Central jars.

No Docker engine and no Apache download site here: Maven resolves ``kafka_2.13`` plus a log4j2
backend into a per-user cache, reused by every clone. See docs/local-stack.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import process
from devstack.errors import StackError
from devstack.paths import (
    HOST,
    KAFKA_LOG4J2_TEMPLATE,
    KAFKA_POM,
    KAFKA_TOOLS_POM,
    KAFKA_VERSION,
    StackConfig,
)

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
# Written last, after Maven succeeded: a libs folder without it is a partial download.
LIBS_MARKER = ".complete"
JAVA_HINT = "install Java 17: apt-get install -y openjdk-17-jre-headless"
MAVEN_HINT = "install Maven: apt-get install -y maven"
PORT_HINT = "set POINTS_STACK_KAFKA_PORT to a free port (the controller uses that port + 1)"
VERSION_LINE = re.compile(r"Kafka version: (\S+)")
# `kafka-features describe`: "Feature: metadata.version<TAB>...FinalizedVersionLevel: 4.1-IV1".
METADATA_VERSION_LINE = re.compile(r"Feature: metadata\.version\b.*?FinalizedVersionLevel: (\S+)")
FEATURES_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class KafkaStatus:
    state: str  # running | unresponsive | stopped
    pid: int | None
    address: str
    version: str | None = None
    metadata_version: str | None = None
    detail: str = ""


def render_server_properties(config: StackConfig) -> str:
    """server.properties for one KRaft node on 127.0.0.1, tuned for a small test box."""
    port, cport = config.kafka_port, config.kafka_controller_port
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Static voters: `format` then needs no --standalone / --initial-controllers flag.
        "controller.quorum.voters": f"1@{HOST}:{cport}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(config.kafka_data_dir),
        # One node: every internal topic must ask for one replica, or consumer groups and
        # transactions never come up (the defaults want 3 and wait for brokers that never come).
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
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


def write_config_files(config: StackConfig) -> None:
    config.kafka_dir.mkdir(parents=True, exist_ok=True)
    config.kafka_properties.write_text(render_server_properties(config))
    shutil.copyfile(KAFKA_LOG4J2_TEMPLATE, config.kafka_log4j2)


def _java_base(java: str, libs: Path, config: StackConfig, heap: list[str]) -> list[str]:
    return [
        java, *heap, "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile=file:{config.kafka_log4j2}",
        "-cp", f"{libs}/*",  # the JVM expands the wildcard itself; no shell involved
    ]  # fmt: skip


def format_storage(config: StackConfig, java: str, libs: Path) -> bool:
    """Format the KRaft log dir once; True when it formatted (False: already formatted)."""
    if (config.kafka_data_dir / "meta.properties").exists():
        return False
    base = _java_base(java, libs, config, ["-Xmx256m"])
    uuid = subprocess.run(
        [*base, "kafka.tools.StorageTool", "random-uuid"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    cluster_id = uuid.stdout.strip().splitlines()[-1] if uuid.stdout.strip() else ""
    if uuid.returncode != 0 or not cluster_id:
        raise StackError(f"kafka StorageTool random-uuid failed:\n{uuid.stdout}{uuid.stderr}")
    result = subprocess.run(
        [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id,
         "-c", str(config.kafka_properties)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"kafka StorageTool format failed:\n{result.stdout}{result.stderr}")
    return True


# --- our process -----------------------------------------------------------------------------


def _is_ours(config: StackConfig, pid: int) -> bool:
    """The PID still runs *our* broker: a kafka.Kafka JVM on this stack's server.properties."""
    argv = process.cmdline(pid)
    if argv is None:  # no /proc: trust the PID file
        return process.pid_alive(pid)
    return "kafka.Kafka" in argv and str(config.kafka_properties) in argv


def our_pid(config: StackConfig) -> int | None:
    """PID of the broker this stack started, if it still runs; clears a stale PID file."""
    pid = process.read_pid(config.kafka_pid_file)
    if pid is None:
        return None
    if process.pid_alive(pid) and _is_ours(config, pid):
        return pid
    config.kafka_pid_file.unlink(missing_ok=True)
    return None


def _check_ports_free(config: StackConfig) -> None:
    for port, role in ((config.kafka_port, "Kafka"), (config.kafka_controller_port, "controller")):
        if not process.port_is_free(HOST, port):
            raise StackError(
                f"port {port} ({role}) is in use by a process this stack did not start: "
                f"stop it, or {PORT_HINT}"
            )


async def _describe_cluster(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient  # heavy import, only when needed

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except Exception:  # any failure just means "not ready yet"
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def answers(config: StackConfig) -> bool:
    """True when the broker answers a metadata request (aiokafka admin describe_cluster)."""
    # aiokafka logs every refused connection at ERROR; while polling those are expected noise.
    aiokafka_logger = logging.getLogger("aiokafka")
    level = aiokafka_logger.level
    aiokafka_logger.setLevel(logging.CRITICAL + 1)
    try:
        return asyncio.run(_describe_cluster(config.kafka_bootstrap))
    finally:
        aiokafka_logger.setLevel(level)


def _wait_ready(config: StackConfig, pid: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not process.pid_alive(pid):
            config.kafka_pid_file.unlink(missing_ok=True)
            raise StackError(
                f"Kafka exited during startup; last lines of {config.kafka_log}:\n"
                + process.tail(config.kafka_log)
            )
        if process.port_answers(HOST, config.kafka_port) and answers(config):
            return
        time.sleep(0.5)
    raise StackError(
        f"Kafka did not answer on {config.kafka_bootstrap} within {READY_TIMEOUT_S:.0f} s "
        f"(pid {pid} left running; `down` stops it); last lines of {config.kafka_log}:\n"
        + process.tail(config.kafka_log)
    )


def start(config: StackConfig) -> tuple[KafkaStatus, bool]:
    """Start the broker unless ours already runs. Returns (status, started_now)."""
    pid = our_pid(config)
    if pid is not None:
        if not process.pid_listens_on(pid, config.kafka_port):
            raise StackError(
                f"this stack's Kafka (pid {pid}) runs but does not listen on port "
                f"{config.kafka_port}; run `python -m devstack down --only kafka` first"
            )
        _wait_ready(config, pid)  # instant when it answers; waits out a broker still starting
        return status(config), False
    _check_ports_free(config)
    java = find_java()
    libs = ensure_libs(config)
    write_config_files(config)
    format_storage(config, java, libs)
    argv = [
        *_java_base(java, libs, config, ["-Xms256m", "-Xmx512m"]),
        "kafka.Kafka", str(config.kafka_properties),
    ]  # fmt: skip
    pid = process.spawn_detached(argv, config.kafka_log, cwd=config.kafka_dir)
    process.write_pid(config.kafka_pid_file, pid)
    _wait_ready(config, pid)
    return status(config), True


def stop(config: StackConfig) -> str:
    pid = our_pid(config)
    if pid is None:
        return "kafka: not running"
    killed = process.terminate(pid, STOP_TIMEOUT_S)
    config.kafka_pid_file.unlink(missing_ok=True)
    how = f"killed after {STOP_TIMEOUT_S:.0f} s" if killed else "stopped"
    return f"kafka: {how} (pid {pid})"


def metadata_version(config: StackConfig, bootstrap: str | None = None) -> str | None:
    """The cluster's finalized ``metadata.version`` as Kafka's own `kafka-features describe` says.

    None when the tool could not ask (it needs the broker up; its JVM takes a few seconds).
    """
    java = find_java()
    classpath = f"{ensure_libs(config)}/*:{ensure_tools(config)}/*"
    try:
        result = subprocess.run(
            [java, "-Xmx128m", f"-Dlog4j2.configurationFile=file:{config.kafka_log4j2}",
             "-cp", classpath, "org.apache.kafka.tools.FeatureCommand",
             "--bootstrap-server", bootstrap or config.kafka_bootstrap, "describe"],
            capture_output=True, text=True, check=False, timeout=FEATURES_TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    return parse_metadata_version(result.stdout)


def parse_metadata_version(features_output: str) -> str | None:
    """The finalized ``metadata.version`` in `kafka-features describe` output, if it names one."""
    match = METADATA_VERSION_LINE.search(features_output)
    return match.group(1) if match else None


def status(config: StackConfig) -> KafkaStatus:
    """Ask the broker itself: liveness by PID, an admin metadata request, version from its log."""
    pid = our_pid(config)
    address = config.kafka_bootstrap
    if pid is None:
        detail = "" if process.port_is_free(HOST, config.kafka_port) else "port in use, not ours"
        return KafkaStatus("stopped", None, address, detail=detail)
    if not answers(config):
        return KafkaStatus("unresponsive", pid, address, detail="no answer to describe_cluster")
    version = None
    with contextlib.suppress(OSError):
        version = logged_version(config.kafka_log.read_text(errors="replace"))
    return KafkaStatus("running", pid, address, version, metadata_version(config))


def state_entry(config: StackConfig, st: KafkaStatus) -> dict[str, object]:
    return {
        "port": config.kafka_port,
        "controller_port": config.kafka_controller_port,
        "bootstrap_servers": config.kafka_bootstrap,
        "pid": st.pid,
        "version": st.version,
        "expected_version": KAFKA_VERSION,
        "metadata_version": st.metadata_version,
        "log": str(config.kafka_log),
        "data_dir": str(config.kafka_data_dir),
    }

"""The operations dashboard in a real headless browser (Debian's chromium over the DevTools
protocol): the API serves /ops over a PostgreSQL ledger seeded with a simulated day (through
the earning pipeline) plus swaps and referrals, and a consumer group with lag on the real
Kafka broker. The page must load (200), draw every chart with data, log no console error,
and leave a screenshot in artifacts/dashboard.png.

Needs /usr/bin/chromium (``apt-get install -y chromium fonts-dejavu-core``); installs nothing.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine

from points.api.app import create_app, load_partners
from points.db import make_engine
from points.migrate import upgrade
from points.rules import load_ruleset
from points.settings import DatabaseSettings, KafkaSettings, Settings, WorkerSettings
from tests.conftest import require_env
from tests.integration.api.conftest import api_settings
from tests.integration.ops.seeding import RULES, seed_day

from .cdp import CHROMIUM, Browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "artifacts" / "dashboard.png"
OPS_TOKEN = "ops-e2e-token-0123456789abcdef"
CHARTS = (
    "events", "lag", "rules", "campaigns", "swaps", "referrals", "packets", "lifecycle", "dlq",
)  # fmt: skip
LAG_TOPIC_PARTITIONS = 2


@pytest.fixture(scope="module", autouse=True)
def chromium() -> None:
    """Debian's chromium, installed by the Makefile's test target (never by the test)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium fonts-dejavu-core",
                    pytrace=False)


async def _lagging_group(bootstrap: str, topic: str, group: str) -> None:
    """A topic with 12 messages and a group that committed 5 of them: lag 7."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.structs import OffsetAndMetadata

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, LAG_TOPIC_PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(12):
            await producer.send_and_wait(topic, b"{}", key=b"k", partition=i % 2)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(LAG_TOPIC_PARTITIONS)]
        consumer.assign(partitions)
        await consumer.commit({partitions[0]: OffsetAndMetadata(3, ""),
                               partitions[1]: OffsetAndMetadata(2, "")})
    finally:
        await consumer.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """uvicorn in a thread, stopped through its own flag."""

    def __init__(self, app: Any) -> None:
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
            loop="asyncio", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, str]]:
    """The API on a free port over a seeded PostgreSQL ledger; yields (base URL, engine,
    lagging topic)."""
    from tests.conftest import reset_pg_schema

    url = require_env("POINTS_TEST_DATABASE_URL")
    bootstrap = require_env("POINTS_KAFKA__BOOTSTRAP_SERVERS")
    reset_pg_schema(url)
    upgrade(url)
    engine = make_engine(url)
    seed_day(engine, customers=400, transactions=3000)
    topic = f"ops-e2e-{uuid.uuid4().hex[:8]}"
    group = f"ops-e2e-group-{uuid.uuid4().hex[:8]}"
    asyncio.run(_lagging_group(bootstrap, topic, group))
    settings = Settings(database=DatabaseSettings(url=url),
                        kafka=KafkaSettings(bootstrap_servers=bootstrap),
                        worker=WorkerSettings(app_id=group))
    mp = pytest.MonkeyPatch()
    mp.setenv("POINTS_API__OPS_TOKEN", OPS_TOKEN)
    try:
        app = create_app(settings, api_settings(), engine=engine, ruleset=load_ruleset(RULES),
                         partners=load_partners(ROOT / "config" / "partners.yaml"))
    finally:
        mp.undo()
    with _Server(app) as base:
        yield base, engine, topic
    engine.dispose()


def _problems(browser: Browser) -> list[str]:
    """Console errors, uncaught exceptions and error log entries the page produced."""
    out: list[str] = []
    for event in browser.events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console." + params["type"] + ": " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            out.append("exception: " + str(params.get("exceptionDetails", {})))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            out.append(f"log: {entry.get('text')} {entry.get('url', '')}")
    return out


def test_dashboard_renders_every_chart_with_the_seeded_day(
    dashboard: tuple[str, Engine, str], tmp_path: Path
) -> None:
    """Sign in with the operator token, load /ops (200), wait for two polls, and check each
    chart has data and pixels, the verify tile says OK, the lag of the worker's group is
    shown, and the console stayed clean; keep a screenshot."""
    base, _engine, topic = dashboard
    browser = Browser(tmp_path / "profile")
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable")
        browser.navigate(f"{base}/ops/login?token={OPS_TOKEN}")
        documents = {
            e["params"]["response"]["url"]: e["params"]["response"]["status"]
            for e in browser.matching(lambda e: e["method"] == "Network.responseReceived"
                                      and e["params"].get("type") == "Document")
        }
        assert documents.get(f"{base}/ops") == 200, documents
        assert browser.evaluate("document.title").startswith("Points Exchange")

        browser.wait_for("window.opsState && window.opsState.updates >= 2")
        # Lag and verify come from background work: wait until both have answered.
        browser.wait_for("window.opsState.last.lag.status === 'ok' && "
                         "window.opsState.last.verify.status === 'ok'")
        browser.wait_for("(() => { const n = window.opsState.updates; return new Promise("
                         "r => setTimeout(() => r(window.opsState.updates > n), 2500)); })()",
                         timeout_s=10)
        state = browser.evaluate("({updates: opsState.updates, errors: opsState.errors, "
                                 "lastError: opsState.lastError})")
        assert state["errors"] == 0, state

        charts = browser.evaluate("""(() => {
            const out = {};
            for (const [name, chart] of Object.entries(window.opsCharts)) {
                const values = chart.data.datasets.flatMap(d => d.data);
                const canvas = chart.canvas;
                const pixels = canvas.getContext('2d')
                    .getImageData(0, 0, canvas.width, canvas.height).data;
                let painted = 0;
                for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
                out[name] = {labels: chart.data.labels.length, values: values.length,
                             nonzero: values.filter(v => v > 0).length,
                             width: canvas.width, height: canvas.height, painted};
            }
            return out;
        })()""")
        assert sorted(charts) == sorted(CHARTS)
        for name, chart in charts.items():
            assert chart["labels"] > 0 and chart["nonzero"] > 0, (name, chart)
            assert chart["width"] > 100 and chart["height"] > 100, (name, chart)
            assert chart["painted"] > 500, (name, chart)  # axes, bars and lines were drawn

        last = browser.evaluate("window.opsState.last")
        assert last["lag"]["topics"][topic]["lag"] == 7
        assert set(last["events"]["series"]) == {
            "bank.customers", "bank.transactions", "customer.activity"}
        assert {r["reason_code"] for r in last["dlq"]["reasons"]} >= {
            "invalid_json", "contract_violation", "key_mismatch"}
        assert browser.evaluate("document.getElementById('verify-status').textContent") \
            .startswith("OK")

        browser.screenshot(ARTIFACT)
        assert ARTIFACT.stat().st_size > 20_000
        assert _problems(browser) == []
    finally:
        browser.close()


def test_the_dashboard_needs_the_operator_token(dashboard: tuple[str, Engine, str],
                                                tmp_path: Path) -> None:
    """Without the cookie the browser gets 401 for /ops and draws nothing."""
    base, _engine, _topic = dashboard
    browser = Browser(tmp_path / "profile")
    try:
        browser.send("Network.enable")
        browser.send("Page.enable")
        browser.navigate(f"{base}/ops")
        statuses = [e["params"]["response"]["status"] for e in browser.matching(
            lambda e: e["method"] == "Network.responseReceived"
            and e["params"]["response"]["url"] == f"{base}/ops")]
        assert statuses == [401]
        assert browser.evaluate("typeof window.opsCharts") == "undefined"
    finally:
        browser.close()

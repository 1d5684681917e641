"""A minimal Chrome DevTools Protocol client for end-to-end tests: start Debian's headless
chromium, open one page, send commands and collect events, over ``websockets`` (already a
dependency through ``uvicorn[standard]``; nothing else to install, no browser download)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
    "--no-default-browser-check", "--password-store=basic", "--remote-debugging-port=0",
)


class CdpError(RuntimeError):
    pass


class Browser:
    """One chromium process with a fresh profile, and one page attached (flat session)."""

    def __init__(self, profile: Path, *, width: int = 1400, height: int = 1000,
                 timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._stack = ExitStack()
        profile.mkdir(parents=True, exist_ok=True)
        # A file, not a pipe: chromium is chatty on stderr and would block on a full pipe.
        self.log_path = profile.parent / f"{profile.name}-chromium.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self._log,
        )
        try:
            self._ws: ClientConnection = self._stack.enter_context(connect(
                self._browser_ws(profile), max_size=64 * 1024 * 1024, open_timeout=timeout_s))
            target = self.send("Target.createTarget", {"url": "about:blank"}, session=None)
            attached = self.send("Target.attachToTarget",
                                 {"targetId": target["targetId"], "flatten": True}, session=None)
            self.session: str | None = attached["sessionId"]
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1,
                       "mobile": False})
        except BaseException:
            self.close()
            raise

    def _browser_ws(self, profile: Path) -> str:
        """Chromium writes its port and browser path to DevToolsActivePort once it listens."""
        marker = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.log_path.read_text(errors="replace")
                raise CdpError(f"chromium exited with {self.process.returncode}: {err[-2000:]}")
            if marker.exists():
                lines = marker.read_text().splitlines()
                if len(lines) >= 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise CdpError("chromium did not open its DevTools port in time")

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | bool | None = True) -> dict[str, Any]:
        """Send a command (to the page unless ``session=None``) and wait for its answer;
        events that arrive meanwhile are kept in :attr:`events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session is True:
            message["sessionId"] = self.session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout_s
        while True:
            raw = self._ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            data = json.loads(raw)
            if data.get("id") == self._next_id:
                if "error" in data:
                    raise CdpError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result
            if "method" in data:
                self.events.append(data)

    def pump(self, seconds: float) -> None:
        """Collect events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = self._ws.recv(timeout=left)
            except TimeoutError:
                return
            data = json.loads(raw)
            if "method" in data:
                self.events.append(data)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout_s: float = 20.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its last value otherwise."""
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self.pump(0.2)
        raise CdpError(f"timed out waiting for {expression!r} (last value {value!r})")

    def navigate(self, url: str, *, timeout_s: float = 20.0) -> None:
        """Go to ``url`` and wait for the load event."""
        seen = len(self.events)
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(e["method"] == "Page.loadEventFired" for e in self.events[seen:]):
                return
            self.pump(0.1)
        raise CdpError(f"{url} did not finish loading")

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page (beyond the viewport)."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1},
        })
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for e in self.events if predicate(e)]

    def close(self) -> None:
        """Ask the browser to quit, then make sure this process (ours, by PID) is gone."""
        ws = getattr(self, "_ws", None)
        if ws is not None:
            # The socket may close before the answer: the wait below decides.
            with suppress(Exception):
                self.send("Browser.close", session=None)
            self._stack.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()

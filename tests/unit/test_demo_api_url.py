"""`make demo` tells the API's real address (issue 12, finding 9): the URL and the curl it
prints come from POINTS_API__HOST / POINTS_API__PORT, the settings the API process reads."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from demo.__main__ import print_still_running
from points.api.settings import ApiSharedSettings


def printed(api_url: str, tmp_path: Path) -> str:
    out = io.StringIO()
    print_still_running(Console(file=out, width=400, color_system=None), api_url, tmp_path,
                        "tok")
    return out.getvalue()


def test_the_demo_prints_the_port_the_api_listens_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POINTS_API__PORT=18181: every line names 127.0.0.1:18181, none 8080."""
    monkeypatch.setenv("POINTS_API__PORT", "18181")
    monkeypatch.delenv("POINTS_API__HOST", raising=False)
    text = printed(ApiSharedSettings().url, tmp_path)
    assert "http://127.0.0.1:18181/docs" in text
    assert "http://127.0.0.1:18181/ops/login?token=" in text
    assert "curl -s -H 'Authorization: Bearer tok' http://127.0.0.1:18181/v1/me/balance" in text
    assert "8080" not in text


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:8080"),
    ("0.0.0.0", "http://127.0.0.1:8080"),
    ("::", "http://[::1]:8080"),
    ("::1", "http://[::1]:8080"),
    ("api.internal", "http://api.internal:8080"),
])
def test_the_url_is_one_a_client_on_this_machine_can_open(
    host: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wildcard bind address is reached on loopback; IPv6 hosts are bracketed."""
    monkeypatch.setenv("POINTS_API__HOST", host)
    monkeypatch.delenv("POINTS_API__PORT", raising=False)
    assert ApiSharedSettings().url == url

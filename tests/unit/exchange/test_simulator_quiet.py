"""``python -m adapters.simulator --quiet``: the same replies, without a log line per reply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.registry import build_registry
from adapters.simulator import PartnerSimulator, behaviours_for, parse_args
from adapters.topics import PartnerTopics
from points import swap_saga
from tests.unit.adapters.support import CONFIG, make_keys

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
KEYS = make_keys()
TOPICS = PartnerTopics(prefix="tq.")


def _simulator(log_replies: bool) -> PartnerSimulator:
    partners = list(CONFIG.partners.values())
    behaviours = behaviours_for(partners, latency_ms=0, reject_rate=0.0, duplicate_rate=0.0)
    return PartnerSimulator(partners, KEYS, TOPICS, behaviours, log_replies=log_replies)


def test_quiet_answers_the_same_bytes_and_logs_no_reply_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Quiet answers the same bytes and logs no reply line."""
    swap = swap_saga.open_swap(
        swap_id="sw-q", customer_id="c-1", partner_id="ridehail", partner_member_id="m-1",
        points=20_000, fee_points=0, partner_units=5000, quote_id="q-1", rate_version="v1",
        requested_at=NOW, deadline_at=NOW + timedelta(minutes=2),
    ).swap
    request = build_registry(CONFIG, KEYS, TOPICS).get("ridehail").swap_request(swap, NOW)
    loud = _simulator(True).answer(request.topic, request.value, request.headers, NOW)
    assert '"event": "reply"' in capsys.readouterr().out
    quiet = _simulator(False).answer(request.topic, request.value, request.headers, NOW)
    assert capsys.readouterr().out == ""
    assert loud == quiet and loud is not None


def test_quiet_is_off_by_default() -> None:
    """Quiet is off by default."""
    assert parse_args(["--partner", "ridehail"]).quiet is False
    assert parse_args(["--partner", "ridehail", "--quiet"]).quiet is True

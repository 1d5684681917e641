"""Partner requests are signed again when the relay publishes them (docs/partners.md, known
limit): a request that waited in the outbox past the replay window is fresh on arrival. Signing
stays in one place, ``ConfiguredPartner.sign``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.registry import build_registry
from adapters.topics import PartnerTopics
from points import swap_saga
from points.exchange.store import outbox_row
from points.outbox import OutboxMessage
from points.signing import REPLAY_WINDOW_S, Verdict, verify
from streams.agents.partners import request_signer
from streams.relay import OutboxRelay
from tests.unit.adapters.support import CONFIG, make_keys

KEYS = make_keys()
TOPICS = PartnerTopics(prefix="rs.")
REGISTRY = build_registry(CONFIG, KEYS, TOPICS)
WRITTEN = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _stored_request() -> OutboxMessage:
    swap = swap_saga.open_swap(
        swap_id="sw-late", customer_id="c-1", partner_id="ridehail", partner_member_id="m-1",
        points=20_000, fee_points=0, partner_units=5000, quote_id="q-1", rate_version="v1",
        requested_at=WRITTEN, deadline_at=WRITTEN + timedelta(minutes=2),
    ).swap
    row = outbox_row(REGISTRY.get("ridehail").swap_request(swap, WRITTEN), "swap:sw-late:request")
    return OutboxMessage(1, row["topic"], row["message_key"], row["message_value"],
                         row["headers"], row["dedupe_key"])


def _check(value: bytes, headers: Any, topic: str, now: datetime) -> Verdict:
    return verify(value, tuple(headers), topic=topic, keys=KEYS, now=now,
                  topic_for=TOPICS.requests).verdict


def test_requests_are_signed_in_one_place() -> None:
    """What the outbox stores is exactly ``ConfiguredPartner.sign`` at writing time."""
    stored = _stored_request()
    program = REGISTRY.get("ridehail")
    expected = program.sign(stored.value, WRITTEN)  # type: ignore[attr-defined]
    assert tuple((k, v.encode()) for k, v in stored.headers.items()) == expected
    assert REGISTRY.sign_request(stored.topic, stored.value, WRITTEN) == expected


def test_a_late_request_is_stale_as_stored_but_valid_as_relayed() -> None:
    """A late request is stale as stored but valid as relayed."""
    stored = _stored_request()
    late = WRITTEN + timedelta(seconds=REPLAY_WINDOW_S + 600)
    as_stored = [(k, v.encode()) for k, v in stored.headers.items()]
    assert _check(stored.value, as_stored, stored.topic, late) is Verdict.STALE
    fresh = REGISTRY.sign_request(stored.topic, stored.value, late)
    assert fresh is not None
    assert _check(stored.value, fresh, stored.topic, late) is Verdict.VALID


def test_only_partner_request_topics_are_signed_again() -> None:
    """Only partner request topics are signed again."""
    assert REGISTRY.sign_request("rs.points.ledger", b"{}", WRITTEN) is None
    assert REGISTRY.sign_request(TOPICS.events("ridehail"), b"{}", WRITTEN) is None
    assert REGISTRY.sign_request(TOPICS.requests("nobody"), b"{}", WRITTEN) is None


def test_the_relay_publishes_the_same_bytes_with_fresh_signature_headers() -> None:
    """The relay publishes the same bytes with fresh signature headers."""
    stored = _stored_request()
    other = OutboxMessage(2, "rs.points.ledger", b"c-1", b'{"n":1}', {"content-type": "x"},
                          "ledger:k")
    sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []

    class Store:
        def __init__(self) -> None:
            self.marked: list[int] = []

        def pending_rows(self, limit: int) -> list[OutboxMessage]:
            return [] if self.marked else [stored, other]

        def mark_relayed(self, ids: list[int]) -> None:
            self.marked.extend(ids)

        @contextlib.contextmanager
        def lease(self) -> Iterator[bool]:
            yield True

    async def send(topic: str, key: bytes | None, value: bytes,
                   headers: list[tuple[str, bytes]]) -> Any:
        sent.append((topic, key, value, headers))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    store = Store()
    relay = OutboxRelay(store, send, sign=request_signer(REGISTRY))  # type: ignore[arg-type]
    assert asyncio.run(relay.drain()) == 2 and store.marked == [1, 2]
    (topic, key, value, headers), ledger = sent
    assert (topic, key, value) == (stored.topic, stored.key, stored.value)
    names = [k for k, _ in headers]
    assert sorted(names) == sorted({*stored.headers, "dedupe_key"})  # replaced, not duplicated
    assert _check(value, [h for h in headers if h[0] != "dedupe_key"], topic,
                  datetime.now(UTC)) is Verdict.VALID
    assert ledger[3] == [("content-type", b"x"), ("dedupe_key", b"ledger:k")]

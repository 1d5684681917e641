"""The partner simulator as a real process against the real broker: it answers signed
requests with correctly signed replies, rejects and duplicates on demand, survives SIGKILL and
stops cleanly on SIGTERM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord

from adapters.contracts import MemberLinkRejected, partner_reply_adapter
from points import swap_saga
from points.events import MemberLinked, SwapConfirmed, SwapRejected
from points.ports import Accepted, MemberLinkRequest, MemberLinkResult, OutboundMessage
from tests.integration.adapters.conftest import StartSimulator
from tests.integration.adapters.support import (
    PartnerEnv,
    at_least,
    collect,
    interpret,
    publish,
)

pytestmark = pytest.mark.integration


def swap_request(env: PartnerEnv, partner_id: str, swap_id: str, customer_id: str = "c-1") -> (
    OutboundMessage
):
    """A swap request exactly as the exchange will produce it (quote -> swap -> adapter)."""
    program = env.registry.get(partner_id)
    now = datetime.now(UTC)
    q = program.quote(program.config.outbound.min_points, now, customer_id=customer_id)
    swap = swap_saga.open_swap(
        swap_id=swap_id, customer_id=customer_id, partner_id=partner_id,
        partner_member_id="m-" + customer_id, points=q.points, fee_points=q.fee_points,
        partner_units=q.partner_units, quote_id=q.quote_id, rate_version=q.rate_version,
        requested_at=now, deadline_at=now + timedelta(minutes=2),
    ).swap
    return program.swap_request(swap, now)


def link_request(env: PartnerEnv, partner_id: str, request_id: str) -> OutboundMessage:
    request = MemberLinkRequest(request_id, "c-1", "M-42", member_name="Li Lei")
    return env.registry.get(partner_id).member_link_request(request, datetime.now(UTC))


def accepted(env: PartnerEnv, record: ConsumerRecord[bytes, bytes]) -> Accepted:
    result = interpret(env, record)
    assert isinstance(result, Accepted), result
    return result


def test_swap_and_member_link_requests_get_correctly_signed_replies(
    partner_env: PartnerEnv, start_simulator: StartSimulator
) -> None:
    """ridehail confirms the swap and links the member; both replies verify under ridehail's
    key on ridehail's events topic, are keyed by customer and name the request."""
    start_simulator(["--partner", "ridehail", "--latency-ms", "50", "--reject-rate", "0"])
    publish(partner_env, [swap_request(partner_env, "ridehail", "sw-1"),
                          link_request(partner_env, "ridehail", "link-1")])
    records = collect(partner_env, "ridehail", at_least(2))
    assert len(records) == 2
    replies = {type(a.event): a for a in (accepted(partner_env, r) for r in records)}
    confirm, link = replies[SwapConfirmed], replies[MemberLinked]
    assert confirm.key_id == "ridehail-2026-01" and confirm.customer_id == "c-1"
    assert isinstance(confirm.domain, swap_saga.PartnerConfirmed)
    assert (confirm.domain.swap_id, confirm.domain.points, confirm.domain.partner_units) == (
        "sw-1", 400, 100)
    assert isinstance(link.domain, MemberLinkResult)
    assert (link.domain.linked, link.domain.request_id, link.domain.partner_member_id) == (
        True, "link-1", "M-42")
    assert all(r.key == b"c-1" for r in records)


def test_with_reject_rate_one_the_partner_rejects(
    partner_env: PartnerEnv, start_simulator: StartSimulator
) -> None:
    """The airline rejects the swap (read as name_mismatch) and refuses the member link."""
    start_simulator(["--partner", "airline", "--latency-ms", "100", "--reject-rate", "1"])
    publish(partner_env, [swap_request(partner_env, "airline", "sw-2"),
                          link_request(partner_env, "airline", "link-2")])
    records = collect(partner_env, "airline", at_least(2))
    replies = {type(a.event): a for a in (accepted(partner_env, r) for r in records)}
    assert set(replies) == {SwapRejected, MemberLinkRejected}
    rejection = replies[SwapRejected].domain
    assert isinstance(rejection, swap_saga.PartnerRejected)
    assert (rejection.swap_id, rejection.reason_code) == ("sw-2", "name_mismatch")
    link = replies[MemberLinkRejected].domain
    assert isinstance(link, MemberLinkResult) and not link.linked


def test_with_duplicate_rate_one_every_reply_arrives_twice_identically(
    partner_env: PartnerEnv, start_simulator: StartSimulator
) -> None:
    """Two byte-identical replies (value, key and signature headers) per request; both
    verify, and the swap state machine ignores the second as a duplicate confirmation."""
    start_simulator(["--partner", "eshop", "--latency-ms", "0", "--reject-rate", "0",
                     "--duplicate-rate", "1"])
    publish(partner_env, [swap_request(partner_env, "eshop", "sw-3")])
    records = collect(partner_env, "eshop", at_least(2))
    assert len(records) == 2
    first, second = records
    assert (first.value, first.key, list(first.headers)) == (
        second.value, second.key, list(second.headers))
    one, two = accepted(partner_env, first), accepted(partner_env, second)
    assert isinstance(one.domain, swap_saga.PartnerConfirmed)
    assert isinstance(two.domain, swap_saga.PartnerConfirmed)
    now = datetime.now(UTC)
    opened = swap_saga.open_swap(
        swap_id="sw-3", customer_id="c-1", partner_id="eshop", partner_member_id="m-c-1",
        points=one.domain.points, fee_points=10, partner_units=one.domain.partner_units,
        quote_id="q", rate_version="v", requested_at=now - timedelta(seconds=5),
        deadline_at=now + timedelta(minutes=2),
    ).swap
    pending = swap_saga.apply(opened, swap_saga.HoldPlaced("sw-3", now - timedelta(seconds=4)))
    assert isinstance(pending, swap_saga.Transition)
    done = swap_saga.apply(pending.swap, one.domain)
    assert isinstance(done, swap_saga.Transition)
    assert done.swap.status is swap_saga.SwapStatus.COMPLETED
    again = swap_saga.apply(done.swap, two.domain)
    assert isinstance(again, swap_saga.Ignored)
    assert again.reason is swap_saga.IgnoreReason.DUPLICATE_CONFIRMATION


@pytest.mark.slow
def test_after_kill_minus_9_a_restarted_simulator_still_answers(
    partner_env: PartnerEnv, start_simulator: StartSimulator
) -> None:
    """A crash loses nothing: the restarted simulator (same group) answers new requests, and
    any reply it re-sends for an uncommitted request carries the same event id."""
    first = start_simulator(["--partner", "ridehail", "--latency-ms", "0", "--reject-rate", "0"])
    publish(partner_env, [swap_request(partner_env, "ridehail", "sw-before")])
    assert len(collect(partner_env, "ridehail", at_least(1))) >= 1
    first.kill()

    start_simulator(["--partner", "ridehail", "--latency-ms", "0", "--reject-rate", "0"])
    publish(partner_env, [swap_request(partner_env, "ridehail", "sw-after")])

    def answered_after(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return any(b"sw-after" in (r.value or b"") for r in records)

    records = collect(partner_env, "ridehail", answered_after, timeout_s=90)
    assert answered_after(records), "the restarted simulator did not answer"
    events = [partner_reply_adapter.validate_json(r.value) for r in records]
    by_swap: dict[str, set[str]] = {}
    for event in events:
        assert isinstance(event, SwapConfirmed)
        by_swap.setdefault(event.swap_id, set()).add(event.event_id)
    assert set(by_swap) == {"sw-before", "sw-after"}
    assert all(len(ids) == 1 for ids in by_swap.values()), by_swap
    for record in records:
        accepted(partner_env, record)


def test_sigterm_stops_the_simulator_cleanly(
    partner_env: PartnerEnv, start_simulator: StartSimulator
) -> None:
    """SIGTERM finishes the batch in hand, commits, leaves the group and exits 0."""
    process = start_simulator(["--partner", "ridehail", "--latency-ms", "0"])
    process.wait_for_log('"event": "started"')
    publish(partner_env, [swap_request(partner_env, "ridehail", "sw-term")])
    assert len(collect(partner_env, "ridehail", at_least(1))) == 1
    assert process.stop() == 0
    assert '"event": "stopped"' in process.log()


def test_all_partners_are_simulated_by_one_process(
    partner_env: PartnerEnv, start_simulator: StartSimulator
) -> None:
    """``--partner all`` answers each partner on its own topic with its own key."""
    start_simulator(["--partner", "all", "--latency-ms", "0", "--reject-rate", "0"])
    publish(partner_env, [swap_request(partner_env, pid, f"sw-{pid}")
                          for pid in ("ridehail", "eshop", "airline")])
    for pid in ("ridehail", "eshop", "airline"):
        records = collect(partner_env, pid, at_least(1))
        assert len(records) == 1
        reply = accepted(partner_env, records[0])
        assert reply.key_id == f"{pid}-2026-01"
        assert isinstance(reply.event, SwapConfirmed) and reply.event.swap_id == f"sw-{pid}"

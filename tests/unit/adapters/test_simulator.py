"""The simulated partner's decisions, without Kafka: what it answers to each request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.contracts import MemberLinkRejected, partner_reply_adapter
from adapters.registry import build_registry
from adapters.simulator import Behaviour, PartnerSimulator, behaviours_for, parse_args
from adapters.topics import PartnerTopics
from points import swap_saga
from points.events import MemberLinked, SwapConfirmed, SwapRejected
from points.ports import (
    Accepted,
    InboundMessage,
    MemberLinkRequest,
    MemberLinkResult,
    OutboundMessage,
)
from tests.unit.adapters.support import CONFIG, make_keys

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
KEYS = make_keys()
TOPICS = PartnerTopics(prefix="t2.")
EXCHANGE = build_registry(CONFIG, KEYS, TOPICS)


def simulator(reject: float = 0.0, duplicate: float = 0.0, seed: int = 0) -> PartnerSimulator:
    partners = list(CONFIG.partners.values())
    behaviours = behaviours_for(partners, latency_ms=0, reject_rate=reject,
                                duplicate_rate=duplicate)
    return PartnerSimulator(partners, KEYS, TOPICS, behaviours, seed=seed)


def swap_request(partner_id: str = "ridehail", swap_id: str = "sw-1") -> OutboundMessage:
    swap = swap_saga.open_swap(
        swap_id=swap_id, customer_id="c-1", partner_id=partner_id, partner_member_id="m-1",
        points=20_000, fee_points=0, partner_units=1000, quote_id="q-1", rate_version="v1",
        requested_at=NOW, deadline_at=NOW + timedelta(minutes=2),
    ).swap
    return EXCHANGE.get(partner_id).swap_request(swap, NOW)


def answer(sim: PartnerSimulator, message: OutboundMessage) -> Accepted:
    """Run the simulator on a request and interpret its reply as the exchange would."""
    reply = sim.answer(message.topic, message.value, message.headers, NOW)
    assert reply is not None
    program = EXCHANGE.for_events_topic(reply.topic)
    result = program.interpret(InboundMessage(reply.topic, reply.key, reply.value,
                                              reply.headers), NOW)
    assert isinstance(result, Accepted), result
    return result


def test_a_swap_request_is_confirmed_with_a_reply_the_exchange_accepts() -> None:
    """The reply is on the partner's events topic, keyed by customer, signed with the partner's
    key, and echoes the swap's points and units."""
    result = answer(simulator(), swap_request())
    assert isinstance(result.event, SwapConfirmed)
    assert (result.event.swap_id, result.event.points, result.event.partner_points) == (
        "sw-1", 20_000, 1000)
    assert result.key_id == "ridehail-2026-01"


def test_with_reject_rate_one_every_swap_is_rejected_with_the_partners_reason() -> None:
    """The airline rejects with its name-mismatch wording, read by the exchange as
    name_mismatch."""
    result = answer(simulator(reject=1.0), swap_request("airline"))
    assert isinstance(result.event, SwapRejected)
    assert isinstance(result.domain, swap_saga.PartnerRejected)
    assert result.domain.reason_code == "name_mismatch"


@pytest.mark.parametrize(("reject", "kind"), [(0.0, MemberLinked), (1.0, MemberLinkRejected)])
def test_member_link_requests_are_linked_or_rejected(reject: float, kind: type) -> None:
    """Linked by default; rejected as a name mismatch by the name-matching airline."""
    link = MemberLinkRequest("link-1", "c-1", "CM-1", member_name="Han Meimei")
    result = answer(simulator(reject=reject), EXCHANGE.get("airline").member_link_request(link,
                                                                                         NOW))
    assert isinstance(result.event, kind)
    assert isinstance(result.domain, MemberLinkResult)
    assert result.domain.linked is (reject == 0.0)
    if reject:
        assert result.domain.reason_code == "name_mismatch"


def test_duplicate_rate_one_sends_every_reply_twice() -> None:
    """Duplicates are the same bytes twice (a partner's producer retry)."""
    message = swap_request()
    reply = simulator(duplicate=1.0).answer(message.topic, message.value, message.headers, NOW)
    assert reply is not None and reply.copies == 2
    single = simulator().answer(message.topic, message.value, message.headers, NOW)
    assert single is not None and single.copies == 1


def test_decisions_are_stable_per_request_and_seed() -> None:
    """A restarted simulator answers a re-read request the same way with the same event id;
    about the configured share of distinct requests is rejected."""
    sim = simulator(reject=0.5, seed=7)
    outcomes = []
    for i in range(200):
        message = swap_request(swap_id=f"sw-{i}")
        first = sim.answer(message.topic, message.value, message.headers, NOW)
        again = simulator(reject=0.5, seed=7).answer(message.topic, message.value,
                                                     message.headers, NOW)
        assert first is not None and again is not None
        one = partner_reply_adapter.validate_json(first.value)
        two = partner_reply_adapter.validate_json(again.value)
        assert (one.event_type, one.event_id) == (two.event_type, two.event_id)
        outcomes.append(one.event_type)
    assert 60 < outcomes.count("swap_rejected") < 140


def test_requests_that_fail_verification_are_dropped() -> None:
    """Unsigned, tampered or mis-addressed requests get no answer, as at a real partner."""
    message = swap_request()
    sim = simulator()
    assert sim.answer(message.topic, message.value, (), NOW) is None
    assert sim.answer(message.topic, message.value + b" ", message.headers, NOW) is None
    assert sim.answer("t2.partner.eshop.requests", message.value, message.headers, NOW) is None
    assert sim.answer("elsewhere", message.value, message.headers, NOW) is None
    assert sim.answer(message.topic, None, message.headers, NOW) is None


def test_cancellations_and_referral_offers_get_no_reply() -> None:
    """They are noted; a real partner acts on them without answering on the events topic."""
    program = EXCHANGE.get("ridehail")
    swap = swap_saga.open_swap(
        swap_id="sw-9", customer_id="c-1", partner_id="ridehail", partner_member_id="m-1",
        points=400, fee_points=0, partner_units=100, quote_id="q", rate_version="v",
        requested_at=NOW, deadline_at=NOW + timedelta(minutes=2),
    ).swap
    cancel = program.swap_cancellation(swap, NOW)
    assert simulator().answer(cancel.topic, cancel.value, cancel.headers, NOW) is None


def test_configured_profiles_apply_unless_overridden() -> None:
    """Without flags each partner uses its config profile (the airline is slow and sometimes
    rejects); flags override every partner."""
    partners = list(CONFIG.partners.values())
    default = behaviours_for(partners, latency_ms=None, reject_rate=None, duplicate_rate=None)
    assert default["airline"].latency_ms == 3000 and default["airline"].reject_rate_bp == 1000
    assert default["ridehail"].duplicate_rate_bp == 0
    forced = behaviours_for(partners, latency_ms=5, reject_rate=0.25, duplicate_rate=1.0)
    assert forced["eshop"] == Behaviour(5, 2500, 10_000, "limit_exceeded",
                                        CONFIG.get("eshop").simulator.reject_reason)


@pytest.mark.parametrize(
    "argv",
    [[], ["--partner", "ridehail", "--reject-rate", "1.5"],
     ["--partner", "ridehail", "--latency-ms", "-1"],
     ["--partner", "ridehail", "--duplicate-rate", "-0.1"]],
)
def test_the_command_line_refuses_bad_arguments(argv: list[str]) -> None:
    """A partner is required; rates are within 0..1 and latency is not negative."""
    with pytest.raises(SystemExit) as caught:
        parse_args(argv)
    assert caught.value.code == 2


def test_the_command_line_accepts_one_partner_or_all() -> None:
    """``--partner ridehail`` or ``--partner all`` with the documented options."""
    args = parse_args(["--partner", "all", "--latency-ms", "10", "--reject-rate", "0.1",
                       "--duplicate-rate", "0.2", "--seed", "3"])
    assert (args.partner, args.latency_ms, args.reject_rate, args.duplicate_rate, args.seed) == (
        ["all"], 10, 0.1, 0.2, 3)

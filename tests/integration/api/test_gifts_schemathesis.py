"""The gifts and red packet routes (docs/gifts.md, docs/api.md), fuzzed from the API's own
OpenAPI document with schemathesis, the public reservation route included.

The whole-API fuzz (test_schemathesis.py) meets these routes without a sender the bank knows or
a real packet, so nearly every case stops at the first refusal. Here alice is a customer of a
month with points, bob has a referral code and a pending gift, and alice's open packet has a
real claim code: generated path parameters are swapped for the real gift id or claim code in
part of the cases, so valid requests send gifts, create and claim packets and reserve shares.
Every answer is documented (status, content type, body), never a 5xx, and every error is
problem details; afterwards the ledger still verifies (points moved, but never wrongly)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from points.ledger import verify
from tests.integration.api.conftest import Api, bearer
from tests.integration.api.fuzzing import RESPONSE_CHECKS, SCHEMATHESIS_RANDOM_IS_NOT_AN_ERROR
from tests.integration.api.test_gifts_api import known

pytestmark = SCHEMATHESIS_RANDOM_IS_NOT_AN_ERROR

EXAMPLES_PER_OPERATION = 50
GIFT_PATHS = {
    "/v1/me/gifts", "/v1/me/gifts/{gift_id}/accept", "/v1/me/packets",
    "/v1/me/packets/{packet_id}", "/v1/me/packet-claims", "/v1/packets/{code}",
    "/v1/packets/{code}/claim", "/public/packets/{code}/reservations",
}
PROBLEM_FIELDS = {"type", "title", "status"}


def test_generated_gift_requests_never_fail_the_server_and_errors_are_problems(
        api: Api) -> None:
    """Every gifts operation, valid and invalid cases, with and without a token, on real
    gifts and packets: never a 5xx, as documented, every 4xx a problem; verify clean after."""
    known(api.engine, "alice")
    known(api.engine, "bob", code="BOBCODE23")
    api.fund("alice", 20_000)
    packet = api.post("/v1/me/packets", {"total": 500, "shares": 50, "split": "random",
                                         "message": "fuzz"}, "fuzz-packet")
    assert packet.status_code == 201, packet.text
    gift = api.post("/v1/me/gifts", {"points": 10, "recipient_referral_code": "BOBCODE23"},
                    "fuzz-gift")
    assert gift.status_code == 201, gift.text
    real = {"code": packet.json()["code"], "packet_id": packet.json()["packet_id"],
            "gift_id": gift.json()["gift_id"]}

    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        if result.ok().path in GIFT_PATHS:
            operations.append(result.ok())
    assert {op.path for op in operations} == GIFT_PATHS

    seen: dict[str, set[int]] = {}
    for operation in operations:
        _explore(operation, real, seen)

    with api.engine.connect() as conn:
        report = verify(conn)
    assert report.ok, report.violations
    # The cases reached past validation: accepted requests and refusals on real objects.
    assert 201 in seen["POST /public/packets/{code}/reservations"], seen
    assert {200, 404} <= seen["GET /v1/packets/{code}"], seen
    assert {401, 422} <= seen["POST /v1/me/gifts"], seen
    assert {200, 409} <= seen["POST /v1/packets/{code}/claim"], seen
    assert {200, 409} <= seen["POST /v1/me/gifts/{gift_id}/accept"], seen


def _explore(operation: Any, real: dict[str, str], seen: dict[str, set[int]]) -> None:
    """Hypothesis over one operation: (case, send the token?, use the real path parameter?)."""
    strategy = st.tuples(
        st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                  operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)),
        st.sampled_from([True, True, True, False]),
        st.booleans(),
    )
    subjects = ["bob", "carol", "dave"]

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(drawn=strategy, who=st.sampled_from(subjects))
    def run(drawn: tuple[Any, bool, bool], who: str) -> None:
        case, with_token, use_real = drawn
        if use_real and case.path_parameters:
            for name in case.path_parameters:
                if name in real:
                    case.path_parameters[name] = real[name]
        sub = "alice" if operation.path.startswith("/v1/me/") and "gift_id" not in (
            case.path_parameters or {}) else who
        response = case.call(headers=bearer(sub) if with_token else {})
        case.validate_response(response, checks=RESPONSE_CHECKS)
        if response.status_code >= 400:
            (content_type,) = response.headers["content-type"]
            assert content_type.startswith("application/problem+json"), (
                operation.path, response.status_code, response.text)
            body = response.json()
            assert set(body) >= PROBLEM_FIELDS and body["status"] == response.status_code, body
        seen.setdefault(f"{operation.method.upper()} {operation.path}", set()).add(
            response.status_code)

    run()

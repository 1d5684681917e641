"""Journey: a partner merchant (the ride-hailing platform) integrating by docs/partners.md.

It reads our requests from ``partner.ridehail.requests`` and publishes its events on
``partner.ridehail.events`` with confluent-kafka, each signed by §3's recipe (HMAC-SHA256,
headers ``x-key-id``, ``x-signed-at``, ``x-signature``). The bank's customers use the app
(httpx against docs/api.md); operations read the outcome with ``points-ledger --json``.

Issue 12 findings 3, 7 and 8 as a stranger meets them: a member link answered with and
without ``link_request_id``; partner purchases that earn exactly what ``rules backtest``
says; a swap confirmed; a late confirmation after expiry, re-sent under a new ``event_id``,
one dispute in both settlement exports.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.journeys.harness import (
    PARTNERS_CONFIG,
    ROOT,
    Journey,
    PartnerProducer,
    event_time,
    wait_until,
)
from tests.journeys.messages import onboarding

pytestmark = pytest.mark.integration

PARTNER = "ridehail"
#: Short enough to watch a swap expire in a test (config/partners.yaml says 120 s).
DEADLINE_S = 6


def partner_event(event_type: str, customer_id: str, **fields: Any) -> dict[str, Any]:
    """docs/partners.md §2: the common fields of every partner event."""
    return {"schema_version": 1, "event_type": event_type,
            "event_id": f"rh-{uuid.uuid4().hex[:16]}", "customer_id": customer_id,
            "partner_id": PARTNER, "occurred_at": event_time(), **fields}



def short_deadline_config(tmp_path: Path) -> Path:
    """config/partners.yaml with the ride-hailing confirmation deadline shortened."""
    config = yaml.safe_load(PARTNERS_CONFIG.read_text())
    config["partners"][PARTNER]["confirmation_deadline_s"] = DEADLINE_S
    path = tmp_path / "partners.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def post(client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> Any:
    response = client.post(path, json=body,
                           headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert response.status_code in (200, 201, 202), (path, response.status_code, response.text)
    return response.json()


def requested(journey: Journey, event_type: str, **match: Any) -> dict[str, Any]:
    """The partner reads our request of ``event_type`` whose fields include ``match``."""

    def wanted(record: Any) -> bool:
        body = record.json()
        return body.get("event_type") == event_type and all(
            body.get(k) == v for k, v in match.items())

    records = journey.read_topic(journey.topics.partner_requests(PARTNER), match=wanted)
    return dict(records[0].json())


def caught_up(journey: Journey) -> None:
    journey.wait_caught_up(journey.partner_worker_group, [journey.topics.partner_events(PARTNER)])


def link_status(journey: Journey, customer_id: str) -> str:
    with journey.customer(customer_id) as app:
        items = app.get("/v1/me/links").json()["items"]
    return next((i["status"] for i in items if i["partner_id"] == PARTNER), "none")


def link_members(journey: Journey, partner: PartnerProducer) -> None:
    """ann's link is answered echoing the request's event_id; bob's without it (optional in
    the contract): both end ``linked``, nothing refused."""
    for customer in ("ann", "bob"):
        with journey.customer(customer) as app:
            post(app, "/v1/me/links", {"partner_id": PARTNER,
                                       "partner_member_id": f"R-{customer}",
                                       "member_name": "Li Lei"})
    for customer, echo in (("ann", True), ("bob", False)):
        request = requested(journey, "member_link_requested", customer_id=customer)
        extra = {"link_request_id": request["event_id"]} if echo else {}
        partner.publish(partner_event("member_linked", customer,
                                      partner_member_id=request["partner_member_id"], **extra))
    partner.flush()
    for customer in ("ann", "bob"):

        def linked(c: str = customer) -> bool:
            return link_status(journey, c) == "linked"

        wait_until(linked, 60, f"{customer}'s link to be linked", journey.logs)
        shown = journey.cli_json("links", "show", f"{customer}/{PARTNER}")
        assert (shown["state"], shown["refusals"]) == ("linked", [])


def backtest_points(journey: Journey, tmp_path: Path, rides: list[dict[str, Any]]) -> int:
    """What ``points-ledger rules backtest`` says these rides earn (rules/default.yaml, the
    file the workers and the API run; the customer's onboarding as the profile)."""
    events, profiles = tmp_path / "rides.jsonl", tmp_path / "profiles.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in rides))
    profiles.write_text(json.dumps(onboarding("ann", days_ago=3)) + "\n")
    rules = str(ROOT / "rules" / "default.yaml")
    report = journey.cli_json("rules", "backtest", "--candidate", rules, "--current", rules,
                              "--events", str(events), "--profiles", str(profiles))
    assert report["events_evaluated"] == len(rides), report
    return int(report["current"]["net_points"])


def balance(journey: Journey, customer_id: str) -> int:
    return int(journey.cli_json("balance", customer_id)["available"])


def swap_status(journey: Journey, customer_id: str, swap_id: str) -> str:
    with journey.customer(customer_id) as app:
        return str(app.get(f"/v1/me/swaps/{swap_id}").json()["status"])


def open_swap(journey: Journey, customer_id: str, points: int) -> dict[str, Any]:
    with journey.customer(customer_id) as app:
        quote = post(app, "/v1/me/swaps/quote", {"partner_id": PARTNER, "points": points})
        return dict(post(app, "/v1/me/swaps", {"quote_id": quote["quote_id"]}))


def confirmation(request: dict[str, Any], reference: str) -> dict[str, Any]:
    return partner_event("swap_confirmed", request["customer_id"], swap_id=request["swap_id"],
                         partner_reference=reference, points=request["points"],
                         partner_points=request["partner_points"])


def test_partner_links_earns_swaps_and_settles_as_documented(
    journey: Journey, tmp_path: Path
) -> None:
    config = short_deadline_config(tmp_path)
    journey.extra_env.update({"POINTS_PARTNERS_CONFIG": str(config),
                              "POINTS_API__PARTNERS_CONFIG": str(config)})
    journey.start_worker()
    journey.start_partner_worker()
    journey.start_api()
    with journey.bank_producer() as bank:
        for customer in ("ann", "bob"):
            bank.send(journey.topics.bank_customers, onboarding(customer, days_ago=3))
    journey.wait_caught_up(journey.worker_group, [journey.topics.bank_customers])
    partner = journey.partner(PARTNER, compression="lz4")

    # Finding 7: member_linked with and without link_request_id.
    link_members(journey, partner)

    # Finding 3: a linked member's rides earn what backtest and the app's preview say, once.
    rides = [partner_event("partner_purchase", "ann", partner_reference=f"RIDE-{n}",
                           amount_minor=30_000, currency="CNY", mcc="4121") for n in range(3)]
    with journey.customer("ann") as app:
        previewed = post(app, "/v1/me/earning-preview", {
            "amount_minor": 30_000, "currency": "CNY", "mcc": "4121",
            "merchant_id": "partner:ridehail", "channel": "mobile", "partner_id": PARTNER})
    assert previewed["points"] == backtest_points(journey, tmp_path, rides[:1])
    expected = backtest_points(journey, tmp_path, rides)
    assert expected >= 800, expected  # enough for the two swaps below
    for ride in rides:
        partner.publish(ride)
    partner.publish(rides[0])  # the partner re-sends a ride after its own restart
    partner.flush()
    caught_up(journey)
    assert balance(journey, "ann") == expected

    # A swap through the app, confirmed by the partner.
    swap = open_swap(journey, "ann", 400)
    request = requested(journey, "swap_requested", swap_id=swap["swap_id"])
    partner.publish(confirmation(request, "RH-CONFIRMED-1"))
    partner.flush()
    wait_until(lambda: swap_status(journey, "ann", swap["swap_id"]) == "completed", 60,
               "the swap to complete", journey.logs)
    shown = journey.cli_json("swaps", "show", swap["swap_id"])
    assert [(r["event_type"], r["outcome"]) for r in shown["replies"]] == [
        ("swap_confirmed", "applied")]
    assert f"swap:{swap['swap_id']}:hold:post" in [e["idempotency_key"] for e in shown["ledger"]]

    # Finding 8: a swap expires; its confirmation comes late and is re-sent under a new id.
    late = open_swap(journey, "ann", 400)
    late_request = requested(journey, "swap_requested", swap_id=late["swap_id"])
    wait_until(lambda: swap_status(journey, "ann", late["swap_id"]) == "expired",
               DEADLINE_S + 60, "the unanswered swap to expire", journey.logs)
    partner.publish(confirmation(late_request, "RH-LATE-1"))
    partner.publish(confirmation(late_request, "RH-LATE-1-RESENT"))
    partner.flush()
    caught_up(journey)
    replies = journey.cli_json("swaps", "show", late["swap_id"])["replies"]
    assert [r["reason"] for r in replies if r["event_type"] == "swap_confirmed"] == [
        "late_confirmation", "late_confirmation"]
    assert balance(journey, "ann") == expected - 400  # the expired swap's points came back

    today = datetime.now(UTC).date()
    period = ["--partner", PARTNER, "--from", (today - timedelta(days=1)).isoformat(),
              "--to", (today + timedelta(days=2)).isoformat(), "--partners-config", str(config)]
    statement = journey.cli_json("settlement", "export", *period, "--format", "json")
    exported = journey.cli("settlement", "export", *period, "--format", "csv")
    assert exported.exit_code == 0, str(exported)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(d["kind"], d["swap_id"]) for d in statement["discrepancies"]] == [
        ("late_confirmation", late["swap_id"])]
    assert [(r["kind"], r["entry_key"]) for r in rows if r["kind"].startswith("discrepancy:")] == [
        ("discrepancy:late_confirmation", late["swap_id"])]
    totals = {r["kind"]: r for r in rows if r["kind"].startswith("total:")}
    assert int(totals["total:discrepancies"]["points"]) == 1
    assert int(totals["total:points_out"]["points"]) == statement["points_out"] == 400

"""Partner purchases earn live exactly what ``rules backtest`` says (issue 12, finding 3):
linked members only, once per event id, first-partner-purchase bonus once, and an unlinked
member's purchase a recorded refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from points.earning.tables import customer_rule_state
from points.events import partner_event_adapter
from points.exchange.partner_events import DEFAULT_RULES_PATH
from points.ledger import customer_balance
from points.refusals import refusals
from points.rules import Profile, load_ruleset
from points.rules.backtest import backtest
from tests.integration.exchange.support import Exchange, event

pytestmark = pytest.mark.integration


def available(x: Exchange, customer: str) -> int:
    with x.engine.connect() as conn:
        return customer_balance(conn, customer, now=x.clock.now).available


def ride(x: Exchange, customer: str, event_id: str, amount_minor: int) -> dict[str, object]:
    return event("partner_purchase", customer, "ridehail", event_id,
                 x.clock.now - timedelta(minutes=5), partner_reference=f"ride-{event_id}",
                 amount_minor=amount_minor, currency="CNY")


def backtest_points(bodies: list[dict[str, object]], customer: str, x: Exchange) -> int:
    """What ``points-ledger rules backtest`` awards these events (the profile the live path
    uses for a customer the bank has not described: segment unknown)."""

    rules = load_ruleset(DEFAULT_RULES_PATH)
    events = [partner_event_adapter.validate_python(b) for b in bodies]
    report = backtest(rules, rules, events,
                      {customer: Profile.unknown(customer)})
    return report.current.per_customer.get(customer, 0)


def test_linked_member_partner_purchases_earn_what_backtest_says_once(
    exchange: Exchange,
) -> None:
    """A linked ride-hailing member's first ride earns base + co-brand + first-ride, the second
    ride no first-ride bonus; together exactly what backtest awards the same two events. The
    batch replayed and the first ride re-sent (same event id) change nothing; the rule state
    is the earning pipeline's, one version per batch that touched it."""
    x = exchange
    x.link("rider", "ridehail")
    first, second = ride(x, "rider", "pp-1", 2500), ride(x, "rider", "pp-2", 2500)
    expected_first = backtest_points([first], "rider", x)
    expected_both = backtest_points([first, second], "rider", x)
    assert expected_first > expected_both - expected_first > 0  # first-ride paid once

    batch = [x.signed("ridehail", first)]
    x.service.process(batch)
    assert available(x, "rider") == expected_first
    x.service.process(batch)  # replay of the same records
    x.service.process([x.signed("ridehail", first)])  # the partner re-sends it
    assert available(x, "rider") == expected_first
    x.service.process([x.signed("ridehail", second)])
    assert available(x, "rider") == expected_both
    with x.engine.connect() as conn:
        version = conn.execute(select(customer_rule_state.c.events_applied).where(
            customer_rule_state.c.customer_id == "rider")).scalar_one()
    assert version == 2
    x.verify_clean()


def test_unlinked_member_partner_purchase_is_a_recorded_refusal(exchange: Exchange) -> None:
    """A purchase for a customer with no confirmed link earns nothing and is recorded once as a
    ``member_not_linked`` refusal (source partners), also when re-delivered; a pending link
    (requested, not yet confirmed) is not enough either."""
    x = exchange
    body = ride(x, "stranger", "pp-9", 3000)
    x.service.process([x.signed("ridehail", body)])
    x.service.process([x.signed("ridehail", body)])
    x.service.request_link("pending", "ridehail", "M-pending")
    x.service.process([x.signed("ridehail", ride(x, "pending", "pp-10", 3000))])
    assert available(x, "stranger") == 0 and available(x, "pending") == 0
    with x.engine.connect() as conn:
        rows = conn.execute(select(refusals.c.customer_id, refusals.c.reason_code,
                                   refusals.c.source, refusals.c.subject, refusals.c.event_id)
                            .order_by(refusals.c.id)).tuples().all()
    assert rows == [
        ("stranger", "member_not_linked", "partners", "partner_purchase", "pp-9"),
        ("pending", "member_not_linked", "partners", "partner_purchase", "pp-10"),
    ]


def test_a_rule_state_written_meanwhile_by_the_earning_worker_reruns_the_batch(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the partner batch evaluates a customer's first ride, the earning worker stores
    that customer's first rule state (version 1): the partner batch's write over version 0
    finds it moved on, rolls back (inbox included) and runs again from the database, so the
    ride earns once and the state ends at version 2, nothing overwritten."""
    from points.earning import store  # where points.exchange.partner_earning loads states
    from points.rules import RuleState

    x = exchange
    x.link("rider", "ridehail")
    real_load = store.load_states_versioned
    calls: list[int] = []

    def load_while_the_earning_worker_writes(conn: object, customers: object) -> object:
        loaded = real_load(conn, customers)  # type: ignore[arg-type]
        if not calls:
            with x.engine.begin() as other:
                store.save_states_versioned(other, {"rider": (RuleState().to_json(), 1)})
        calls.append(1)
        return loaded

    monkeypatch.setattr(store, "load_states_versioned",
                        load_while_the_earning_worker_writes)
    body = ride(x, "rider", "pp-race", 2500)
    x.service.process([x.signed("ridehail", body)])
    assert len(calls) == 2
    assert available(x, "rider") == backtest_points([body], "rider", x)
    with x.engine.connect() as conn:
        version = conn.execute(select(customer_rule_state.c.events_applied).where(
            customer_rule_state.c.customer_id == "rider")).scalar_one()
    assert version == 2
    x.verify_clean()


def shop(x: Exchange, customer: str, event_id: str) -> dict[str, object]:
    return event("partner_purchase", customer, "eshop", event_id,
                 x.clock.now - timedelta(minutes=5), partner_reference=f"order-{event_id}",
                 amount_minor=8800, currency="CNY")


def test_a_first_partner_purchase_triggers_the_cross_sell_nudge_once_and_only_with_consent(
    exchange: Exchange,
) -> None:
    """rules/default.yaml's ``eshop-try-ridehail``: a linked member's first e-shop purchase,
    reported on the partner's topic, is a sent nudge (cause ``first_partner:eshop``) queued on
    customer.nudges in the purchase's transaction; a replay and a second purchase add none; a
    member whose profile does not opt in gets a suppressed ``no_consent`` decision instead."""
    from points.earning import store
    from points.nudges.tables import nudges
    from points.outbox import outbox_table

    x = exchange
    profile = {"segment": "mass", "joined_at": "2025-01-01T00:00:00+00:00", "status": "active"}
    with x.engine.begin() as conn:
        store.save_profiles(conn, {
            "keen": ({**profile, "marketing_consent": True}, None),
            "private": ({**profile, "marketing_consent": False}, None),
        })
    x.link("keen", "eshop")
    x.link("private", "eshop")
    first = x.signed("eshop", shop(x, "keen", "o-1"))
    x.service.process([first, x.signed("eshop", shop(x, "private", "o-2"))])
    x.service.process([first])  # redelivered
    x.service.process([x.signed("eshop", shop(x, "keen", "o-3"))])
    with x.engine.connect() as conn:
        decided = conn.execute(
            select(nudges.c.customer_id, nudges.c.nudge, nudges.c.cause, nudges.c.outcome,
                   nudges.c.reason_code).order_by(nudges.c.customer_id)
        ).tuples().all()
        queued = conn.execute(
            select(outbox_table.c.message_key)
            .where(outbox_table.c.topic == x.topic_names.customer_nudges)
        ).scalars().all()
    assert decided == [
        ("keen", "eshop-try-ridehail", "first_partner:eshop", "sent", None),
        ("private", "eshop-try-ridehail", "first_partner:eshop", "suppressed", "no_consent"),
    ]
    assert [bytes(key) for key in queued] == [b"keen"]
    x.verify_clean()

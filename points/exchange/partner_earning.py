"""Partner purchases earn through the rules engine, as bank purchases do (docs/partners.md §5).

A ``partner_purchase`` from a member whose link to the customer is ``linked`` is evaluated by
:func:`points.rules.evaluate` -- the function the earning worker, ``rules backtest`` and the
earning preview call -- against the customer's rule state and profile (the earning pipeline's
``customer_rule_state`` / ``customer_profiles``), so live, preview and backtest give one
answer. In the partner batch's ONE transaction:

- the points are an ``Earn`` with the ledger key :func:`partner_earn_key` (idempotent on the
  partner's event id; a replay finds the event in the inbox first and plans nothing);
- the new rule state (first-partner-purchase bonus taken, caps, counters) is written over the
  version it was read at, under the row lock, so the earning worker, which checks versions
  too, re-reads it instead of overwriting it (points/earning/working_set.py);
- the earning record is stored, so ``points-ledger explain`` and a clawback find the lines;
- the nudges the purchase triggers (a first purchase at this partner, a milestone nearly
  reached: the rule file's ``nudges:``) are decided and the sent ones queued on
  ``customer.nudges``, as the earning worker does for card purchases (points/nudges).

A purchase from a customer who is not linked to that partner (never asked, still requested,
rejected) earns nothing and is a recorded refusal (``member_not_linked``), never silence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select, tuple_

from points.earning import store
from points.earning.service import _profile_from_json, earn_key
from points.events import PartnerPurchase
from points.exchange.store import bounded_id
from points.exchange.tables import partner_links
from points.ledger.model import Earn, Reason
from points.nudges.policy import NudgeCause
from points.nudges.store import record_nudges
from points.nudges.triggers import NudgeRules
from points.refusals import Refusal
from points.rules import Profile, RulesError, RuleSet, RuleState, evaluate

__all__ = [
    "PartnerEarning",
    "StaleRuleState",
    "partner_earn_key",
    "partner_record_id",
    "plan_partner_earning",
]

REFUSAL_SOURCE = "partners"
REFUSAL_SUBJECT = "partner_purchase"


class StaleRuleState(Exception):
    """Another worker wrote a customer's rule state first: roll back and run the batch again."""


def partner_record_id(partner_id: str, event_id: str) -> str:
    """The purchase's id in the earning records and the inbox: a partner's event ids are
    unique per partner only, so it names the partner (``p:<partner>:<event id>``)."""
    return bounded_id("p", partner_id, event_id)


def partner_earn_key(partner_id: str, event_id: str) -> str:
    """The ledger key of a partner purchase's points, as the earning worker's ``earn:<id>``."""
    return earn_key(partner_record_id(partner_id, event_id))


@dataclass(slots=True)
class PartnerEarning:
    """What a batch's partner purchases write (all in the batch's transaction)."""

    earns: list[Earn] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    states: dict[str, tuple[dict[str, object], int]] = field(default_factory=dict)
    records: dict[str, tuple[str, dict[str, object]]] = field(default_factory=dict)
    nudges: list[NudgeCause] = field(default_factory=list)


def plan_partner_earning(
    conn: Connection,
    purchases: Sequence[PartnerPurchase],
    ruleset: RuleSet,
    *,
    now: datetime,
    lot_lifetime: timedelta,
    nudge_rules: NudgeRules | None = None,
) -> PartnerEarning:
    """Evaluate the batch's fresh partner purchases in order (see the module docstring);
    rule states are read locked and must be saved with :func:`save_partner_earning`."""
    out = PartnerEarning()
    if not purchases:
        return out
    linked = _linked_pairs(conn, {(p.customer_id, p.partner_id) for p in purchases})
    earning = [p for p in purchases if (p.customer_id, p.partner_id) in linked]
    for p in purchases:
        if (p.customer_id, p.partner_id) not in linked:
            out.refusals.append(_not_linked(p, now))
    customers = {p.customer_id for p in earning}
    loaded = store.load_states_versioned(conn, customers)
    states = {c: RuleState.from_json(raw) for c, (raw, _) in loaded.items()}
    versions = {c: version for c, (_, version) in loaded.items()}
    profiles = {
        c: _profile_from_json(c, raw) for c, raw in store.load_profiles(conn, customers).items()
    }
    for p in earning:
        customer = p.customer_id
        profile = profiles.get(customer) or Profile.unknown(customer)
        before = states.get(customer) or RuleState()
        try:
            result = evaluate(ruleset, p, profile, before, now=now)
        except RulesError as exc:
            out.refusals.append(_refused(p, now, getattr(exc, "code", "rule_refused"), str(exc)))
            continue
        states[customer] = result.state
        if nudge_rules is not None and nudge_rules.on_purchase:
            out.nudges += nudge_rules.purchase_nudges(
                customer, p.occurred_at, profile, before, result.state
            )
        key = partner_earn_key(p.partner_id, p.event_id)
        out.records[partner_record_id(p.partner_id, p.event_id)] = (
            customer, result.record().to_json()
        )
        if result.points > 0:
            out.earns.append(
                Earn(
                    idempotency_key=key,
                    customer_id=customer,
                    amount=result.points,
                    expires_at=p.occurred_at.astimezone(UTC) + lot_lifetime,
                    reason=Reason(
                        rule_ids=result.rule_ids,
                        ruleset_version=result.ruleset_version,
                        source_event=p.event_id,
                        campaign=f"partner:{p.partner_id}",
                    ),
                )
            )
    for customer in customers:
        if customer in states:
            out.states[customer] = (states[customer].to_json(), versions.get(customer, 0) + 1)
    return out


def save_partner_earning(
    conn: Connection,
    earning: PartnerEarning,
    ruleset: RuleSet,
    *,
    nudges_topic: str,
    now: datetime,
) -> None:
    """Write the rule states (only over the version read), the earning records and the
    nudges' decisions; raise :class:`StaleRuleState` when another writer moved a state on
    (the caller rolls back, nudges included, and runs the batch again)."""
    written = store.save_states_versioned(conn, earning.states)
    if written != len(earning.states):
        raise StaleRuleState(f"{len(earning.states) - written} rule states moved on")
    store.save_records(conn, earning.records)
    if earning.nudges:
        record_nudges(
            conn, ruleset.nudges, ruleset.zone, ruleset.version, earning.nudges,
            topic=nudges_topic, now=now,
        )


def _linked_pairs(conn: Connection, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    rows = conn.execute(
        select(partner_links.c.customer_id, partner_links.c.partner_id).where(
            tuple_(partner_links.c.customer_id, partner_links.c.partner_id).in_(sorted(pairs)),
            partner_links.c.status == "linked",
        )
    ).tuples()
    return {(str(c), str(p)) for c, p in rows}


def _not_linked(p: PartnerPurchase, now: datetime) -> Refusal:
    return _refused(
        p, now, "member_not_linked",
        f"customer {p.customer_id} has no confirmed member link with {p.partner_id}: "
        "only linked members earn on partner purchases",
    )


def _refused(p: PartnerPurchase, now: datetime, code: str, reason: str) -> Refusal:
    return Refusal(
        dedupe_key=f"partner_purchase:{p.partner_id}:{p.event_id}",
        source=REFUSAL_SOURCE,
        subject=REFUSAL_SUBJECT,
        reason_code=str(code)[:64],
        reason=reason,
        at=now,
        subject_id=p.partner_reference,
        event_id=p.event_id,
        customer_id=p.customer_id,
    )

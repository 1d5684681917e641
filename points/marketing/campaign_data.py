"""Reading a campaign's population and its customers' outcomes from the ledger database.

**Population**: every customer with a profile (``customer_profiles``) who matches the
campaign audience's *profile* conditions — ``segments``, ``statuses`` (as the profile is now),
``age_below`` / ``age_at_least`` (age in the year the window starts), ``joined_within_days``
(joined at most that many days before the window ends) — and joined before the window ended.
Conditions on behaviour (``dormant_for_days``, and any decided from the customer's activity)
do not narrow it: they are listed in :attr:`Population.not_narrowed_by`. A wider population
dilutes the measured effect but does not bias it, because the holdout hash knows nothing of
behaviour (docs/marketing.md).

**Outcomes**, per customer, of the purchases that occurred in the window (by their
``occurred_at``): each purchase's earning record (``earning_records``) joined with its inbox
row (``inbound_events``, for the time). Spend is net of refunds; the campaign's points are the
record's line for the campaign less what was clawed back, or, for a held-out customer, the
record's ``held_out`` figure.

A report reads every earning record once (one pass, streamed): minutes on a ledger of tens of
millions of purchases; run it on a replica for those.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from points.earning.tables import customer_profiles, earning_records
from points.inbox import inbound_events
from points.marketing.uplift import CustomerOutcome
from points.rules.ruleset import Audience, CampaignRule

__all__ = ["Population", "campaign_outcomes", "campaign_population"]

#: Audience conditions read from the profile; any other set condition is behavioural.
_PROFILE_CONDITIONS = frozenset(
    {"segments", "statuses", "age_below", "age_at_least", "joined_within_days"}
)
_STREAM_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class Population:
    customers: tuple[str, ...]
    #: audience conditions that could not narrow the population (behavioural ones)
    not_narrowed_by: tuple[str, ...]


def campaign_population(conn: Connection, campaign: CampaignRule) -> Population:
    """The campaign's customers, by their profiles (see the module docstring)."""
    audience = campaign.audience
    starts_at = campaign.window.starts_at
    ends_at = campaign.window.ends_at
    customers = [
        customer_id
        for customer_id, profile in conn.execute(
            select(customer_profiles.c.customer_id, customer_profiles.c.profile).order_by(
                customer_profiles.c.customer_id
            )
        )
        if _matches(audience, profile, starts_at, ends_at)
    ]
    behavioural = sorted(
        name for name, value in audience if value is not None and name not in _PROFILE_CONDITIONS
    )
    return Population(tuple(customers), tuple(behavioural))


def _matches(
    audience: Audience, profile: dict[str, Any], starts_at: datetime, ends_at: datetime
) -> bool:
    joined_at = datetime.fromisoformat(str(profile["joined_at"]))
    if joined_at >= ends_at:
        return False
    if audience.segments is not None and profile.get("segment") not in audience.segments:
        return False
    if (
        audience.statuses is not None
        and (profile.get("status") or "active") not in audience.statuses
    ):
        return False
    birth_year = profile.get("birth_year")
    age = None if birth_year is None else starts_at.year - int(birth_year)
    if audience.age_below is not None and (age is None or age >= audience.age_below):
        return False
    if audience.age_at_least is not None and (age is None or age < audience.age_at_least):
        return False
    return not (
        audience.joined_within_days is not None
        and joined_at < ends_at - timedelta(days=audience.joined_within_days)
    )


def _window_purchases(
    conn: Connection, starts_at: datetime, ends_at: datetime
) -> Iterator[tuple[str, dict[str, Any]]]:
    occurred = inbound_events.c.payload["occurred_at"].as_string()
    query = (
        select(earning_records.c.customer_id, earning_records.c.record, occurred)
        .join(inbound_events, inbound_events.c.event_id == earning_records.c.event_id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    for customer_id, record, occurred_at in conn.execute(query):
        if occurred_at is None:
            continue
        moment = datetime.fromisoformat(occurred_at)
        if starts_at <= moment < ends_at:
            yield customer_id, record


def campaign_outcomes(conn: Connection, campaign: CampaignRule) -> dict[str, CustomerOutcome]:
    """Each customer's purchases, net spend and the campaign's points over its window."""
    rule_id = campaign.id
    totals: dict[str, list[int]] = {}
    for customer_id, record in _window_purchases(
        conn, campaign.window.starts_at, campaign.window.ends_at
    ):
        row = totals.setdefault(customer_id, [0, 0, 0])
        row[0] += 1
        row[1] += int(record["amount_minor"]) - int(record.get("refunded_minor") or 0)
        paid = sum(int(line["points"]) for line in record["lines"] if line["rule_id"] == rule_id)
        if paid:
            row[2] += paid - int((record.get("clawed") or {}).get(rule_id, 0))
        held = record.get("held_out")
        if held:
            row[2] += int(held.get(rule_id, 0))
    return {
        customer_id: CustomerOutcome(purchases, spend, points)
        for customer_id, (purchases, spend, points) in totals.items()
    }

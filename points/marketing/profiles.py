"""Customers' behaviour profiles read from the ledger database, for people and analysts.

The profile lives in each customer's rule state (``customer_rule_state.state``, written by the
earning worker in the same transaction as the points; points/rules/behaviour.py). This module
reads it back: one customer (``points-ledger customer show``), every customer as CSV rows
(``customer export``, schema in docs/marketing.md), and the count per lifecycle stage (the
operations dashboard). Everything is "as of" a day: a customer's own newest event day by
default, or one day for everybody (the export's and dashboard's default is the newest event
day the stream has seen for anyone: event time, not the wall clock).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import IO, Any, Final

from sqlalchemy import Connection, select

from points.earning.tables import customer_profiles, customer_rule_state
from points.rules.behaviour import STAGES, LifecycleThresholds, Snapshot
from points.rules.lifecycle import as_of_day, profile_of
from points.rules.state import RuleState

__all__ = [
    "EXPORT_COLUMNS",
    "CustomerView",
    "customer_view",
    "export_csv",
    "newest_event_day",
    "stage_counts",
]

#: the export's columns, in order (docs/marketing.md, "Customer profile export")
EXPORT_COLUMNS: Final = (
    "customer_id",
    "as_of",
    "lifecycle",
    "recency_days",
    "purchases_30d",
    "spend_30d_minor",
    "purchases_90d",
    "spend_90d_minor",
    "first_purchase_on",
    "last_purchase_on",
    "reactivated_on",
    "top_mcc_group",
    "top_mcc_groups",
    "top_partner",
    "partner_affinity",
    "purchases_total",
    "segment",
)
_FETCH_ROWS: Final = 2000


@dataclass(frozen=True)
class CustomerView:
    """One customer as ``customer show`` prints it."""

    customer_id: str
    segment: str | None
    purchases_total: int
    profile: Snapshot | None  # None: no event yet

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "customer_id": self.customer_id,
            "segment": self.segment,
            "purchases_total": self.purchases_total,
        }
        if self.profile is None:
            body.update({"as_of": None, "lifecycle": "new", "note": "no event yet"})
        else:
            body.update(self.profile.to_json())
        return body


def customer_view(
    conn: Connection, customer_id: str, thresholds: LifecycleThresholds, as_of: date | None
) -> CustomerView | None:
    """The customer's profile, or None when the ledger knows neither a profile from core
    banking nor any event of theirs."""
    stored = conn.execute(
        select(customer_rule_state.c.state).where(customer_rule_state.c.customer_id == customer_id)
    ).scalar_one_or_none()
    bank = conn.execute(
        select(customer_profiles.c.profile).where(customer_profiles.c.customer_id == customer_id)
    ).scalar_one_or_none()
    if stored is None and bank is None:
        return None
    state = RuleState() if stored is None else RuleState.from_json(stored)
    segment = bank.get("segment") if isinstance(bank, dict) else None
    return CustomerView(
        customer_id,
        segment if isinstance(segment, str) else None,
        state.purchase_count,
        profile_of(state, thresholds, as_of),
    )


def _states(conn: Connection) -> Iterator[tuple[str, RuleState]]:
    """Every customer's rule state, in customer order, streamed."""
    query = select(customer_rule_state.c.customer_id, customer_rule_state.c.state).order_by(
        customer_rule_state.c.customer_id
    )
    result = conn.execution_options(stream_results=True, yield_per=_FETCH_ROWS).execute(query)
    for customer_id, stored in result:
        yield customer_id, RuleState.from_json(stored)


def newest_event_day(conn: Connection) -> date | None:
    """The newest event day in anyone's state: the stream's event-time "today"."""
    newest: date | None = None
    for _, state in _states(conn):
        day = as_of_day(state)
        if day is not None and (newest is None or day > newest):
            newest = day
    return newest


def stage_counts(
    conn: Connection, thresholds: LifecycleThresholds, as_of: date | None = None
) -> dict[str, Any]:
    """Customers per lifecycle stage as of one day (default: the newest event day seen).

    One pass over the states when ``as_of`` is given, two otherwise."""
    day = as_of or newest_event_day(conn)
    counts = dict.fromkeys(STAGES, 0)
    if day is not None:
        for _, state in _states(conn):
            if as_of_day(state) is None:
                continue
            view = profile_of(state, thresholds, day)
            assert view is not None
            counts[view.stage] += 1
    return {
        "as_of": None if day is None else day.isoformat(),
        "stages": counts,
        "customers": sum(counts.values()),
    }


def _pairs(pairs: tuple[tuple[str, int], ...]) -> str:
    return "|".join(f"{name}:{count}" for name, count in pairs)


def export_csv(
    conn: Connection, out: IO[str], thresholds: LifecycleThresholds, as_of: date | None = None
) -> tuple[int, date | None]:
    """Write every customer with an event as one CSV row (EXPORT_COLUMNS), as of one day
    (default: the newest event day seen); returns (rows written, the day)."""
    day = as_of or newest_event_day(conn)
    segments = dict(
        conn.execute(select(customer_profiles.c.customer_id, customer_profiles.c.profile))
        .tuples()
        .all()
    )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    rows = 0
    if day is None:
        return rows, None
    for customer_id, state in _states(conn):
        view = profile_of(state, thresholds, day)
        if view is None:
            continue
        bank = segments.get(customer_id)
        segment = bank.get("segment") if isinstance(bank, dict) else None
        writer.writerow(
            (
                customer_id,
                view.as_of.isoformat(),
                view.stage,
                "" if view.recency_days is None else view.recency_days,
                view.purchases_30d,
                view.spend_30d_minor,
                view.purchases_90d,
                view.spend_90d_minor,
                _day(view.first_purchase_on),
                _day(view.last_purchase_on),
                _day(view.reactivated_on),
                view.top_mcc_group or "",
                _pairs(view.top_mcc_groups),
                view.top_partner or "",
                _pairs(view.partner_affinity),
                state.purchase_count,
                segment if isinstance(segment, str) else "",
            )
        )
        rows += 1
    return rows, day


def _day(day: date | None) -> str:
    return "" if day is None else day.isoformat()

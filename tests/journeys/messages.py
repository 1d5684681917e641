"""Core banking's messages as docs/schemas describes them (bank.customers, bank.transactions),
built the one way every journey needs: the documented required fields with a realistic
default, and any field overridden by keyword. Written from the schemas, not imported."""

from __future__ import annotations

from typing import Any

from tests.journeys.harness import event_time

__all__ = ["bank_transaction", "onboarding", "profile"]


def onboarding(customer_id: str, *, days_ago: float = 2, **fields: Any) -> dict[str, Any]:
    """``customer_onboarded``: joined ``days_ago`` days before now, segment ``mass``."""
    return {
        "schema_version": 1,
        "event_type": "customer_onboarded",
        "event_id": f"onb-{customer_id}",
        "customer_id": customer_id,
        "occurred_at": event_time(days_ago=days_ago),
        "joined_at": event_time(days_ago=days_ago),
        "segment": "mass",
        **fields,
    }


def profile(customer_id: str, *, days_ago: float = 3, joined_days_ago: float = 30,
            **fields: Any) -> dict[str, Any]:  # fmt: skip
    """``customer_profile``: an active ``mass`` customer."""
    return {
        "schema_version": 1,
        "event_type": "customer_profile",
        "event_id": f"prof-{customer_id}",
        "customer_id": customer_id,
        "occurred_at": event_time(days_ago=days_ago),
        "joined_at": event_time(days_ago=joined_days_ago),
        "segment": "mass",
        "status": "active",
        **fields,
    }


def bank_transaction(event_type: str, event_id: str, customer_id: str, amount_minor: int,
                     days_ago: float, **fields: Any) -> dict[str, Any]:  # fmt: skip
    """A ``purchase``, ``refund`` or ``reversal`` in CNY at a grocer, card present."""
    return {
        "schema_version": 1,
        "event_type": event_type,
        "event_id": event_id,
        "customer_id": customer_id,
        "amount_minor": amount_minor,
        "currency": "CNY",
        "mcc": "5411",
        "merchant_id": "M-GROCER-0042",
        "channel": "card_present",
        "occurred_at": event_time(days_ago=days_ago),
        **fields,
    }

"""The partner exchange: member links, swaps, inbound credits, referrals, settlement.

See docs/partners.md (flows, messages) and docs/settlement.md (statements). The service is a
facade over its desks (points/exchange/service.py lists them).
"""

from points.exchange.link_desk import LinkView
from points.exchange.partner_events import BatchOutcome
from points.exchange.service import ExchangeService
from points.exchange.swap_desk import (
    ExchangeError,
    SwapOrder,
    SwapRefused,
    SwapView,
    UnknownQuote,
    swap_id_for,
)

__all__ = [
    "BatchOutcome",
    "ExchangeError",
    "ExchangeService",
    "LinkView",
    "SwapOrder",
    "SwapRefused",
    "SwapView",
    "UnknownQuote",
    "swap_id_for",
]

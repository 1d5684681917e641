"""The partner exchange: member links, swaps, inbound credits, referrals, settlement.

See docs/partners.md (flows, messages) and docs/settlement.md (statements).
"""

from points.exchange.service import (
    BatchOutcome,
    ExchangeError,
    ExchangeService,
    LinkView,
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

"""Cloud Miles Club: airline miles. Answers slowly (it batches postings) and rejects swaps
whose passenger name does not match the member account.

The airline's rejection vocabulary predates ours: a name mismatch arrives as
``reason_code="other"`` with a reason text starting ``name_mismatch:``. This adapter turns it
into the customer-facing code ``name_mismatch`` so the app can tell the customer what to fix.
"""

from __future__ import annotations

from adapters.program import ConfiguredPartner
from points.events import SwapRejected

__all__ = ["NAME_MISMATCH", "AirlineProgram"]

NAME_MISMATCH = "name_mismatch"


class AirlineProgram(ConfiguredPartner):
    """Airline miles program: member links and swaps need the passenger's name to match."""

    def rejection_code(self, event: SwapRejected) -> str:
        if event.reason_code == "other" and event.reason.startswith(NAME_MISMATCH):
            return NAME_MISMATCH
        return event.reason_code

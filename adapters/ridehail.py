"""RideHail Go: ride coins, answers over Kafka within a second or two.

Nothing beyond the configuration: the generic program is the whole adapter.
"""

from __future__ import annotations

from adapters.program import ConfiguredPartner

__all__ = ["RidehailProgram"]


class RidehailProgram(ConfiguredPartner):
    """Ride-hailing app: swaps credit ride coins to the rider's wallet immediately."""

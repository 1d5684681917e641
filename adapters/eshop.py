"""ShopMall Beans: e-commerce platform beans, answers over Kafka within seconds.

The platform words a monthly credit cap as ``limit_exceeded``; customers see it as such.
"""

from __future__ import annotations

from adapters.program import ConfiguredPartner

__all__ = ["EshopProgram"]


class EshopProgram(ConfiguredPartner):
    """E-commerce platform: beans credited to the member's account, usable at checkout."""

"""The gift and red packet limits, one settings group (``POINTS_GIFTS__*``). Pydantic only."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["GiftSettings"]


class GiftSettings(BaseModel):
    """Limits on gifts and red packets (docs/gifts.md explains each)."""

    # "accept": a gift is held until the recipient accepts it (or it times out back to the
    # sender); "immediate": it is posted to the recipient as soon as it is sent.
    delivery: Literal["accept", "immediate"] = "accept"
    accept_hours: int = Field(default=72, ge=1, le=24 * 30)
    packet_expiry_hours_default: int = Field(default=24, ge=1, le=24 * 7)
    # Seconds, not hours, may be asked for per packet (journeys, demos): the floor is 1 s.
    packet_expiry_s_min: int = Field(default=1, ge=1)
    packet_shares_max: int = Field(default=200, ge=1, le=10_000)
    amount_max: int = Field(default=1_000_000, ge=1)
    daily_points_max: int = Field(default=50_000, ge=1)
    monthly_points_max: int = Field(default=500_000, ge=1)
    daily_sends_max: int = Field(default=50, ge=1)
    monthly_sends_max: int = Field(default=500, ge=1)
    # A customer the bank has known for less than this may not send (fresh mule accounts).
    min_account_age_days: int = Field(default=7, ge=0, le=3650)
    # A non-customer who opens a packet keeps a reserved share this long (fission).
    reservation_hours: int = Field(default=48, ge=1, le=24 * 30)

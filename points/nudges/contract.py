"""The ``customer.nudges`` message (v1): what the bank's push service receives.

Keyed by ``customer_id``; one message per nudge sent, never two for one ``nudge_id`` (the
``dedupe_key`` header is ``nudge:<nudge_id>`` too, for a consumer that drops the rare relay
duplicate). The JSON Schema (docs/schemas/customer.nudges.schema.json) and the AsyncAPI entry
are generated from this model by ``python -m points.contracts_docs``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

__all__ = ["NUDGE_SCHEMA_VERSION", "NudgeMessage", "nudge_message_adapter"]

NUDGE_SCHEMA_VERSION = 1

NudgeKind = Literal[
    "milestone_near",
    "first_partner_purchase",
    "streak_at_risk",
    "points_expiring",
    "lifecycle_at_risk",
]


class NudgeMessage(BaseModel):
    """A message to push to one customer now: render ``template`` with ``data``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    event_type: Literal["nudge"] = "nudge"
    #: hash of (nudge, customer_id, cause): the same cause always gives the same id
    nudge_id: Annotated[str, Field(min_length=16, max_length=64)]
    #: the rule file's nudge id
    nudge: Annotated[str, Field(min_length=1, max_length=64)]
    kind: NudgeKind
    customer_id: Annotated[str, Field(min_length=1, max_length=64)]
    #: what caused it, e.g. ``milestone:ten-purchases``, ``streak:daily:2026-12-05``
    cause: Annotated[str, Field(min_length=1, max_length=200)]
    template: Annotated[str, Field(min_length=1, max_length=100)]
    offer_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    #: the moment of the trigger: the event's occurred_at, or the timer's decision time
    triggered_at: AwareDatetime
    #: the local day (rule file's zone) it counts on for the frequency caps
    local_day: date
    ruleset_version: Annotated[str, Field(min_length=1, max_length=64)]
    #: the template's values: remaining, target, badge, partner, suggest, points, expires_on,
    #: streak, length (which ones depend on the kind; docs/marketing.md, "Nudges")
    data: dict[str, str | int | None] = {}


nudge_message_adapter: TypeAdapter[NudgeMessage] = TypeAdapter(NudgeMessage)

"""Nudge declarations: the rule file's ``nudges:`` section, validated with the rules.

A nudge is a message the bank's push service sends a customer at a moment that could change
what they do. The rule file declares each one (``messages``) with the kind of moment that
triggers it, a message ``template`` and an optional ``offer_id`` for the push service, and the
section's policy: frequency ``caps`` per customer per local day and ISO week, ``quiet_hours``
in the rule file's time zone. See docs/rules.md ("Nudges").

Kinds:

- ``milestone_near``: a purchase leaves the customer ``remaining`` short of a milestone rule
  (purchases, or minor units for a spend milestone) or of a challenge (categories);
- ``first_partner_purchase``: the customer's first purchase at one partner (any, or one of
  ``partners``): cross-sell ``suggest``, a partner they have not bought at;
- ``streak_at_risk``: a customer on a check-in/purchase ``streak`` has not counted today by
  ``by_local_hour`` (a timer decides it, not an incoming event);
- ``points_expiring``: points of the customer's lots expire within ``within_days`` (a timer);
- ``lifecycle_at_risk``: the customer's lifecycle stage became ``at_risk`` (a win-back offer;
  wired to the behaviour profile when it exists, see points/nudges/triggers.py).

This module imports no rule types (the rule set imports it); :func:`reference_problems` checks
names against the rule ids, kinds and partners it is handed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "FirstPartnerPurchaseNudge",
    "LifecycleAtRiskNudge",
    "MilestoneNearNudge",
    "Nudge",
    "NudgeCaps",
    "NudgeSection",
    "PointsExpiringNudge",
    "QuietHours",
    "StreakAtRiskNudge",
    "reference_problems",
]

Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
TemplateId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NudgeCaps(_Strict):
    """At most this many nudges sent to one customer per local day and per ISO week (local);
    a nudge beyond a cap is recorded as suppressed (``cap_per_day`` / ``cap_per_week``)."""

    per_day: Annotated[int, Field(ge=1, le=100, strict=True)] = 1
    per_week: Annotated[int, Field(ge=1, le=700, strict=True)] = 3

    @model_validator(mode="after")
    def _week_holds_a_day(self) -> NudgeCaps:
        if self.per_week < self.per_day:
            raise ValueError("per_week must be at least per_day")
        return self


class QuietHours(_Strict):
    """No nudge is sent between ``starts`` and ``ends`` (local time, rule file's zone; the
    span may cross midnight: 21:00 to 08:00). A nudge triggered then is suppressed
    (``quiet_hours``), recorded, and not sent later."""

    starts: time
    ends: time

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.starts == self.ends:
            raise ValueError("starts and ends must differ")
        return self

    def contains(self, local: time) -> bool:
        if self.starts < self.ends:
            return self.starts <= local < self.ends
        return local >= self.starts or local < self.ends


class _NudgeBase(_Strict):
    id: Slug
    description: Annotated[str, Field(max_length=500)] = ""
    enabled: bool = True
    #: what the bank's push service renders (its own template catalogue)
    template: TemplateId
    #: an offer the message carries (the push service's or a campaign's id), if any
    offer_id: TemplateId | None = None


class MilestoneNearNudge(_NudgeBase):
    kind: Literal["milestone_near"]
    #: a milestone or challenge rule id
    target: Slug
    #: how short of it the customer is when the nudge fires (purchases, minor units of spend,
    #: or challenge categories: the target's own unit)
    remaining: Annotated[int, Field(ge=1, le=10**12, strict=True)]


class FirstPartnerPurchaseNudge(_NudgeBase):
    kind: Literal["first_partner_purchase"]
    #: the partners whose first purchase triggers it (omitted: any partner)
    partners: list[Slug] | None = None
    #: the partner to cross-sell (never nudged to a customer who already bought there)
    suggest: Slug


class StreakAtRiskNudge(_NudgeBase):
    kind: Literal["streak_at_risk"]
    #: a streak rule id with ``period: day``
    streak: Slug
    #: local hour (0-23) by which today must have counted, else the nudge fires
    by_local_hour: Annotated[int, Field(ge=0, le=23, strict=True)]


class PointsExpiringNudge(_NudgeBase):
    kind: Literal["points_expiring"]
    within_days: Annotated[int, Field(ge=1, le=365, strict=True)]
    #: lots smaller than this (together, per expiry day) are not worth a message
    min_points: Annotated[int, Field(ge=1, le=10**12, strict=True)] = 1


class LifecycleAtRiskNudge(_NudgeBase):
    kind: Literal["lifecycle_at_risk"]


Nudge = Annotated[
    MilestoneNearNudge
    | FirstPartnerPurchaseNudge
    | StreakAtRiskNudge
    | PointsExpiringNudge
    | LifecycleAtRiskNudge,
    Field(discriminator="kind"),
]


class NudgeSection(_Strict):
    """The rule file's ``nudges:`` section (absent: no nudges)."""

    caps: NudgeCaps = NudgeCaps()
    quiet_hours: QuietHours | None = None
    messages: list[Nudge] = []

    def enabled(self) -> list[Nudge]:
        return [nudge for nudge in self.messages if nudge.enabled]


def reference_problems(
    section: NudgeSection, rule_kinds: Mapping[str, str], streak_periods: Mapping[str, str],
    partners: set[str],
) -> list[tuple[str, str]]:
    """(field, message) for each nudge naming what the rule file does not have.

    ``rule_kinds``: rule id -> kind; ``streak_periods``: streak rule id -> period.
    """
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    known_partners = ", ".join(sorted(partners)) or "none"
    for nudge in section.messages:
        where = f"nudges.{nudge.id}"
        if nudge.id in seen:
            problems.append((f"{where}.id", "duplicate nudge id"))
        seen.add(nudge.id)
        if isinstance(nudge, MilestoneNearNudge):
            kind = rule_kinds.get(nudge.target)
            if kind not in ("milestone", "challenge"):
                problems.append((
                    f"{where}.target",
                    f"{nudge.target!r} is not a milestone or challenge rule of this file",
                ))
        elif isinstance(nudge, FirstPartnerPurchaseNudge):
            for name in [*(nudge.partners or []), nudge.suggest]:
                if name not in partners:
                    problems.append((
                        f"{where}.partners" if name != nudge.suggest else f"{where}.suggest",
                        f"unknown partner {name!r} (known: {known_partners})",
                    ))
        elif isinstance(nudge, StreakAtRiskNudge):
            period = streak_periods.get(nudge.streak)
            if period is None:
                problems.append((f"{where}.streak", f"{nudge.streak!r} is not a streak rule"))
            elif period != "day":
                problems.append((
                    f"{where}.streak",
                    f"streak {nudge.streak!r} counts {period}s; streak_at_risk needs a daily one",
                ))
            quiet = section.quiet_hours
            if quiet is not None and quiet.contains(time(nudge.by_local_hour)):
                problems.append((
                    f"{where}.by_local_hour",
                    f"{nudge.by_local_hour}:00 is within quiet_hours: every one would be "
                    "suppressed",
                ))
    return problems

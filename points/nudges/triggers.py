"""Event-triggered nudges: what a purchase's rule state change says (pure, no I/O).

The earning batch already has each customer's state before and after a purchase
(points/earning/service.py), so the triggers read only those -- no database read per event.
:class:`NudgeRules` is the rule file's nudges compiled once (by the service that runs them); its
``on_purchase`` is false when no event-triggered nudge is declared, and then the earning
batch does nothing more per event than test it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from points.nudges.declarations import (
    FirstPartnerPurchaseNudge,
    LifecycleAtRiskNudge,
    MilestoneNearNudge,
    PointsExpiringNudge,
    StreakAtRiskNudge,
)
from points.nudges.policy import NudgeCause
from points.rules.lifecycle import as_of_day
from points.rules.plan import plan_of
from points.rules.records import Profile
from points.rules.ruleset import ChallengeRule, MilestoneRule, RuleSet
from points.rules.state import RuleState

__all__ = ["LIFECYCLE_AT_RISK", "NudgeRules", "lifecycle_cause"]

#: the lifecycle stage a win-back nudge answers (the behaviour profile's name for it)
LIFECYCLE_AT_RISK: Final = "at_risk"


@dataclass(frozen=True, slots=True)
class _MilestoneNear:
    nudge: MilestoneNearNudge
    rule: MilestoneRule


@dataclass(frozen=True, slots=True)
class _ChallengeNear:
    nudge: MilestoneNearNudge
    rule: ChallengeRule


class NudgeRules:
    """A rule set's enabled nudges, sorted by what triggers them."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.zone = ruleset.zone
        self.section = ruleset.nudges
        self.thresholds = plan_of(ruleset).lifecycle
        self.milestones: list[_MilestoneNear] = []
        self.challenges: list[_ChallengeNear] = []
        self.first_partner: list[FirstPartnerPurchaseNudge] = []
        self.streaks: list[StreakAtRiskNudge] = []
        self.expiring: list[PointsExpiringNudge] = []
        self.lifecycle: list[LifecycleAtRiskNudge] = []
        for nudge in self.section.enabled():
            if isinstance(nudge, MilestoneNearNudge):
                rule = ruleset.rule(nudge.target)
                if isinstance(rule, MilestoneRule) and rule.enabled:
                    self.milestones.append(_MilestoneNear(nudge, rule))
                elif isinstance(rule, ChallengeRule) and rule.enabled:
                    self.challenges.append(_ChallengeNear(nudge, rule))
            elif isinstance(nudge, FirstPartnerPurchaseNudge):
                self.first_partner.append(nudge)
            elif isinstance(nudge, StreakAtRiskNudge):
                self.streaks.append(nudge)
            elif isinstance(nudge, PointsExpiringNudge):
                self.expiring.append(nudge)
            else:
                self.lifecycle.append(nudge)
        #: whether a purchase can trigger anything (else the earning batch skips the call);
        #: lifecycle nudges are the timer's (points/nudges/timers.py says why)
        self.on_purchase = bool(self.milestones or self.challenges or self.first_partner)
        #: whether the leader's timer has anything to look for
        self.on_timer = bool(self.streaks or self.expiring or self.lifecycle)

    def lifecycle_causes(
        self, customer_id: str, state: RuleState, at: datetime, consent: bool, status: str
    ) -> list[NudgeCause]:
        """Win-back nudges for a customer now ``at_risk``, one per quiet spell: the cause names
        the customer's newest event day, so every later round finds the same spell decided."""
        cause = lifecycle_cause(state)
        return [
            NudgeCause(nudge, customer_id, cause, at, consent, status,
                       {"stage": LIFECYCLE_AT_RISK})
            for nudge in self.lifecycle
        ]

    def purchase_nudges(
        self,
        customer_id: str,
        occurred_at: datetime,
        profile: Profile,
        before: RuleState,
        after: RuleState,
    ) -> list[NudgeCause]:
        """The nudges one purchase triggers, from the state before and after it."""
        out: list[NudgeCause] = []

        def cause(nudge: object, what: str, data: dict[str, str | int | None]) -> None:
            assert isinstance(
                nudge, MilestoneNearNudge | FirstPartnerPurchaseNudge
            )
            out.append(
                NudgeCause(
                    nudge, customer_id, what, occurred_at, profile.marketing_consent,
                    profile.status, data,
                )
            )

        for near in self.milestones:
            rule = near.rule
            if rule.metric == "purchase_count":
                was, now = before.purchase_count, after.purchase_count
            else:
                was, now = before.cumulative_spend_minor, after.cumulative_spend_minor
            left_before, left_after = rule.threshold - was, rule.threshold - now
            if 0 < left_after <= near.nudge.remaining < left_before:
                cause(near.nudge, f"milestone:{rule.id}", {
                    "target": rule.id, "remaining": left_after, "badge": rule.badge,
                    "points": rule.points,
                })
        for near_challenge in self.challenges:
            challenge = near_challenge.rule
            progress = after.challenges.get(challenge.id)
            if progress is None or progress.completed:
                continue
            if challenge.requires_opt_in and not progress.opted_in:
                continue
            earlier = before.challenges.get(challenge.id)
            had = (
                len(earlier.categories)
                if earlier is not None and earlier.period == progress.period
                else 0
            )
            left_before = challenge.target - had
            left_after = challenge.target - len(progress.categories)
            if 0 < left_after <= near_challenge.nudge.remaining < left_before:
                cause(near_challenge.nudge, f"challenge:{challenge.id}:{progress.period}", {
                    "target": challenge.id, "remaining": left_after, "badge": challenge.badge,
                    "points": challenge.points,
                })
        if self.first_partner:
            new = after.partners_seen - before.partners_seen
            for partner in sorted(new):
                for nudge in self.first_partner:
                    if nudge.partners is not None and partner not in nudge.partners:
                        continue
                    if nudge.suggest == partner or nudge.suggest in after.partners_seen:
                        continue
                    cause(nudge, f"first_partner:{partner}", {
                        "partner": partner, "suggest": nudge.suggest,
                    })
        return out


def lifecycle_cause(state: RuleState) -> str:
    """``lifecycle:at_risk:<newest event day>``: one win-back per spell without events."""
    day = as_of_day(state)
    return f"lifecycle:{LIFECYCLE_AT_RISK}:{'none' if day is None else day.isoformat()}"

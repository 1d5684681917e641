"""The earning rules engine: pure functions over a declarative rule file.

Public surface::

    load_ruleset(path) -> RuleSet                     (raises RuleFileError)
    parse_ruleset(text, *, source) -> RuleSet
    evaluate(ruleset, event, profile, state, *, now) -> Evaluation
    preview(ruleset, purchase: PurchaseFacts, profile, state, *, now) -> Evaluation
    clawback(ruleset, record, refund, state) -> ClawbackDecision
    RuleState.to_json() / RuleState.from_json(data)
    EarningRecord.to_json() / EarningRecord.from_json(data)

The backtest lives in :mod:`points.rules.backtest` (``python -m points.rules.backtest``) and
rule-file checking in :mod:`points.rules.check` (``python -m points.rules.check FILE``).
Errors form one tree rooted at :class:`RulesError` (see :mod:`points.rules.errors`).

Inside: :mod:`~points.rules.ruleset` (the rule file's models) is compiled once per rule set
into a :mod:`~points.rules.plan`; :mod:`~points.rules.engine` runs a purchase through it,
with :mod:`~points.rules.days` (the calendar), :mod:`~points.rules.caps`,
:mod:`~points.rules.gamification` (streaks, challenges, badges, app activity) and the
:mod:`~points.rules.records` it returns; :mod:`~points.rules.state` and
:mod:`~points.rules.counters` are what a customer carries from one event to the next;
:mod:`~points.rules.clawback` decides what a refund takes back.
"""

from points.rules.clawback import (
    ClawbackDecision,
    ClawbackDecisionPart,
    clawback,
    proportional_clawback,
)
from points.rules.engine import evaluate, preview
from points.rules.errors import (
    NotAnEarningEvent,
    RefundMismatch,
    RuleFileError,
    RuleProblem,
    RulesError,
)
from points.rules.records import (
    ClawbackPolicy,
    EarningEvent,
    EarningRecord,
    Evaluation,
    Line,
    Profile,
    PurchaseFacts,
)
from points.rules.ruleset import RuleSet, load_ruleset, parse_ruleset
from points.rules.state import ChallengeState, RuleState, StreakState

__all__ = [
    "ChallengeState",
    "ClawbackDecision",
    "ClawbackDecisionPart",
    "ClawbackPolicy",
    "EarningEvent",
    "EarningRecord",
    "Evaluation",
    "Line",
    "NotAnEarningEvent",
    "Profile",
    "PurchaseFacts",
    "RefundMismatch",
    "RuleFileError",
    "RuleProblem",
    "RuleSet",
    "RuleState",
    "RulesError",
    "StreakState",
    "clawback",
    "evaluate",
    "load_ruleset",
    "parse_ruleset",
    "preview",
    "proportional_clawback",
]

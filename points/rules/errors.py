"""Errors of the rules engine: a branch of the exchange's one tree (:mod:`points.errors`)::

PointsError                      points_error
└── RulesError                   rules_error
    ├── RuleFileError            rule_file_invalid      a rule file failed to load
    │                                                   (names file, rule id and field)
    ├── NotAnEarningEvent        not_an_earning_event   evaluate() got a refund, profile...
    └── RefundMismatch           refund_mismatch        clawback() got a refund that is not
                                                        for that record
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from points.errors import PointsError

__all__ = ["NotAnEarningEvent", "RefundMismatch", "RuleFileError", "RuleProblem", "RulesError"]


class RulesError(PointsError):
    """Base of every error the rules engine raises."""

    code: ClassVar[str] = "rules_error"


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with a rule file: which rule (None: the file itself), which field, why."""

    rule_id: str | None
    field: str | None
    message: str

    def describe(self, source: str) -> str:
        parts = [source]
        if self.rule_id is not None:
            parts.append(f"rule {self.rule_id!r}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return f"{': '.join(parts)}: {self.message}"


class RuleFileError(RulesError):
    """A rule file is unreadable or invalid; ``problems`` lists every issue found."""

    code = "rule_file_invalid"

    def __init__(self, source: str, problems: Iterable[RuleProblem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(problem.describe(source) for problem in self.problems))


class NotAnEarningEvent(RulesError, TypeError):
    """Only purchases, partner purchases and app activity earn; refunds go to clawback()."""

    code = "not_an_earning_event"


class RefundMismatch(RulesError, ValueError):
    """The refund names another original event, customer or currency than the record."""

    code = "refund_mismatch"

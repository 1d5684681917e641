"""Model versus ledger, per customer: the verdict and a report a person can act on.

Shared by the unit-layer check (tests/model/test_model_vs_pipeline.py) and the journey
(tests/journeys/test_model_day.py); imports nothing from ``points``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from tests.model.generator import Stream
from tests.model.reference import RuleFile, calculate

__all__ = ["Difference", "cause", "differences", "summary"]

Difference = tuple[Stream, int, int]  # stream, the model's balance, the ledger's


def differences(
    rules: RuleFile, streams: Sequence[Stream], ledger: Mapping[str, int]
) -> list[Difference]:
    """Every customer whose ledger balance is not the model's."""
    found = []
    for stream in streams:
        model = calculate(rules, stream.bodies).balance
        if model != ledger[stream.customer_id]:
            found.append((stream, model, ledger[stream.customer_id]))
    return found


def _arrived_out_of_event_order(stream: Stream) -> bool:
    times = [datetime.fromisoformat(b["occurred_at"]) for b in stream.bodies[1:]]
    return any(later < earlier for earlier, later in itertools.pairwise(times))


def cause(rules: RuleFile, stream: Stream) -> str:
    """Which known defect a disagreement falls under, judged from the stream and the model."""
    if calculate(rules, stream.bodies).milestones_taken_across:
        return "a refund takes back a milestone reached on another purchase (finding 2)"
    if _arrived_out_of_event_order(stream):
        return "arrival order differs from event-time order (finding 6 and kin)"
    return "neither: a new disagreement"


def summary(rules: RuleFile, found: Sequence[Difference], customers: int) -> list[str]:
    too_much = sum(1 for _, model, ledger in found if ledger > model)
    causes = Counter(cause(rules, stream) for stream, _, _ in found)
    return [
        f"{len(found)} of {customers} customers differ from the model "
        f"({too_much} with more points than docs/rules.md gives, "
        f"{len(found) - too_much} with fewer)",
        *(f"  {n} x {why}" for why, n in causes.most_common()),
    ]

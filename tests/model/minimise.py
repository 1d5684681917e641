"""Shrink a stream on which the model and the pipeline disagree to a shortest one that still does.

Greedy one-at-a-time removal (delta debugging with chunk size 1) until no single message can go.
Each try runs under fresh customer and event ids, so the pipeline's inbox sees it as new input.
"""

from __future__ import annotations

import itertools
from typing import Any

from tests.model.generator import Stream
from tests.model.pipeline import Pipeline
from tests.model.reference import RuleFile, calculate

__all__ = ["Disagreement", "minimise", "renamed"]

_ATTEMPT = itertools.count(1)
_ID_FIELDS = ("event_id", "original_event_id")


def renamed(stream: Stream, new_customer: str) -> Stream:
    """The same stream for another customer: ids rewritten so nothing is a duplicate."""
    old = stream.customer_id

    def rewrite(body: dict[str, Any]) -> dict[str, Any]:
        out = dict(body)
        out["customer_id"] = new_customer
        for name in _ID_FIELDS:
            if name in out:
                out[name] = out[name].replace(f"-{old}-", f"-{new_customer}-", 1)
        return out

    return Stream(new_customer, [(topic, rewrite(body)) for topic, body in stream.messages])


class Disagreement:
    def __init__(self, stream: Stream, model: int, pipeline: int) -> None:
        self.stream = stream
        self.model = model
        self.pipeline = pipeline

    def describe(self) -> str:
        lines = [f"model {self.model}, pipeline {self.pipeline} (arrival order):"]
        for topic, body in self.stream.messages:
            shown = {k: v for k, v in body.items() if k not in ("customer_id", "currency")}
            lines.append(f"  {topic}: {shown}")
        return "\n".join(lines)


def _check(pipeline: Pipeline, rules: RuleFile, stream: Stream) -> Disagreement | None:
    trial = renamed(stream, f"{stream.customer_id.split('.')[0]}.{next(_ATTEMPT)}")
    pipeline.feed([trial])
    got = pipeline.balances([trial.customer_id])[trial.customer_id]
    want = calculate(rules, trial.bodies).balance
    return None if got == want else Disagreement(trial, want, got)


def minimise(pipeline: Pipeline, rules: RuleFile, stream: Stream) -> Disagreement | None:
    """The shortest disagreeing stream greedy removal finds (None: it no longer disagrees)."""
    best = _check(pipeline, rules, stream)
    if best is None:
        return None
    current = stream
    shrunk = True
    while shrunk:
        shrunk = False
        for i in range(len(current.messages) - 1, 0, -1):  # the profile (index 0) stays
            candidate = Stream(
                current.customer_id, current.messages[:i] + current.messages[i + 1 :]
            )
            found = _check(pipeline, rules, candidate)
            if found is not None:
                current, best, shrunk = candidate, found, True
    return best

"""What the earning worker keeps in memory between batches, and how it splits a batch."""

from __future__ import annotations

import orjson

from points.earning.working_set import CachedCustomer, WorkingSet
from points.outbox import BUNDLE_CONTENT_TYPE, BundledMessage, bundle_row, unbundle
from points.rules import RuleState


def entry(version: int) -> CachedCustomer:
    return CachedCustomer(version=version, state=RuleState(), profile=None)


def test_the_working_set_returns_what_it_holds_and_names_the_rest() -> None:
    ws = WorkingSet(capacity=10)
    ws.put({"a": entry(1), "b": entry(2)})
    held, missing = ws.split(["a", "c", "b", "d"])
    assert {c: e.version for c, e in held.items()} == {"a": 1, "b": 2}
    assert missing == ["c", "d"]


def test_the_working_set_drops_the_least_recently_written_past_its_capacity() -> None:
    ws = WorkingSet(capacity=3)
    ws.put({"a": entry(1), "b": entry(1), "c": entry(1)})
    ws.put({"a": entry(2)})  # a is now the most recent
    ws.put({"d": entry(1)})
    held, missing = ws.split(["a", "b", "c", "d"])
    assert sorted(held) == ["a", "c", "d"]
    assert missing == ["b"]
    assert len(ws) == 3


def test_a_working_set_of_capacity_zero_remembers_nothing_and_clear_forgets_all() -> None:
    none = WorkingSet(capacity=0)
    none.put({"a": entry(1)})
    assert none.split(["a"]) == ({}, ["a"])
    ws = WorkingSet(capacity=5)
    ws.put({"a": entry(1)})
    ws.clear()
    assert ws.split(["a"]) == ({}, ["a"])


def test_a_bundle_row_gives_back_each_message_in_order_with_its_own_dedupe_key() -> None:
    messages = [
        BundledMessage("alice", {"entry_key": "earn:1", "points": 5}, "ledger:earn:1"),
        BundledMessage("bob", {"entry_key": "earn:2", "points": -3}, "ledger:earn:2"),
    ]
    row = bundle_row("points.ledger", messages)
    assert row["headers"] == {"content-type": BUNDLE_CONTENT_TYPE}
    assert row["dedupe_key"] == "bundle:ledger:earn:1"
    out = unbundle(row["message_value"])
    assert [(m.key, orjson.loads(m.value), m.dedupe_key) for m in out] == [
        ("alice", {"entry_key": "earn:1", "points": 5}, "ledger:earn:1"),
        ("bob", {"entry_key": "earn:2", "points": -3}, "ledger:earn:2"),
    ]


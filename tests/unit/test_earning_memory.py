"""What the earning worker keeps in memory between batches, and how it splits a batch."""

from __future__ import annotations

import orjson

from points.earning.working_set import CachedCustomer, WorkingSet
from points.ingest import RawMessage
from points.intake import BUNDLE_CONTENT_TYPE, BundledMessage, bundle_row, unbundle
from points.rules import RuleState
from streams.agents.earning import split_into_lanes


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


def test_lanes_split_a_batch_by_partition_and_keep_each_partitions_order() -> None:
    batch = [RawMessage("t", p, o, b"k", b"v") for o, p in enumerate([0, 1, 2, 3, 0, 1, 2])]
    lanes = split_into_lanes(batch, 2)
    assert [[(m.partition, m.offset) for m in lane] for lane in lanes] == [
        [(0, 0), (2, 2), (0, 4), (2, 6)],
        [(1, 1), (3, 3), (1, 5)],
    ]
    assert split_into_lanes(batch, 1) == [batch]
    assert split_into_lanes([m for m in batch if m.partition == 1], 2) == [
        [m for m in batch if m.partition == 1]
    ]
    assert split_into_lanes([], 3) == []

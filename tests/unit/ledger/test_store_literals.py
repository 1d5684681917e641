"""The batch path's hand-built forms: array literals, epoch microseconds, the earn hash text."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from points.ledger.model import BANK, Earn, Reason, request_hash
from points.ledger.store.pg import _EXACT_MICROS, _epoch_micros
from points.pgarrays import int_array_literal as _ints
from points.pgarrays import text_array_literal as _texts


def _texts_one_by_one(values: Sequence[str | None]) -> str:
    """The escaping every value used to get on its own (the reference)."""
    return "{" + ",".join(
        "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for v in values
    ) + "}"


@pytest.mark.parametrize("values", [
    ['{"rule_ids":["a"]}', '{"note":"x\\\\y"}', "plain", ""],
    ['"', "\\", '\\"', "ü", "a,b", "{}", " spaced "],
    ["only"],
    ['"only"'],
])
def test_escaped_texts_match_escaping_each_value(values: list[str]) -> None:
    assert _texts(values) == _texts_one_by_one(values)
    assert _texts(tuple(values)) == _texts_one_by_one(values)


def test_a_value_holding_nul_is_escaped_one_by_one() -> None:
    """NUL separates the values while escaping; a value holding one takes the slow path
    (and PostgreSQL then refuses it, as before)."""
    values = ['"a"', "b\x00c"]
    assert _texts(values) == _texts_one_by_one(values)


def test_texts_and_ints_with_nulls() -> None:
    assert _texts([None, None]) == "{NULL,NULL}"
    assert _texts(['"q"', None]) == _texts_one_by_one(['"q"', None])
    assert _ints([None, None, None]) == "{NULL,NULL,NULL}"
    assert _ints((None,)) == "{NULL}"
    assert _ints([1, None, -3]) == "{1,NULL,-3}"
    assert _ints(iter([4, 5])) == "{4,5}"


def test_epoch_micros_are_exact_or_refused() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    zone = timezone(timedelta(hours=-3, minutes=-30))
    when = datetime(2027, 6, 1, 12, 30, 5, 123456, tzinfo=zone)
    assert _epoch_micros([epoch, when]) == (
        "{0," + str(int((when - epoch).total_seconds()) * 10**6 + 123456) + "}")
    assert _epoch_micros([]) == "{}"
    # float8 could not carry these exactly: the caller sends text instead
    assert _epoch_micros([datetime(9999, 12, 31, tzinfo=UTC)]) is None
    assert _epoch_micros([epoch + timedelta(microseconds=_EXACT_MICROS)]) is None
    assert _epoch_micros([epoch - timedelta(microseconds=_EXACT_MICROS)]) is None
    assert _epoch_micros([epoch + timedelta(microseconds=_EXACT_MICROS - 1)]) is not None
    assert _epoch_micros([when, datetime(2027, 1, 1)]) is None  # naive: text says what it means


def _general_hash(op: Earn) -> int:
    """request_hash's general form: repr of the field list (what the fast form must equal)."""
    r = op.reason
    parts = ["Earn", op.customer_id, op.amount, op.expires_at.isoformat(), op.program, op.kind,
             op.from_partner, (r.rule_ids, r.ruleset_version, r.campaign, r.operator,
                               r.source_event, r.note)]
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@pytest.mark.parametrize("op", [
    Earn("k", "alice", 10, datetime(2027, 1, 1, tzinfo=UTC)),
    Earn("k", "o'brien \"q\" \\ ü\n", 10**12, datetime(2027, 1, 1, 1, 2, 3, 4, tzinfo=UTC),
         program="ride", kind="swap", from_partner="p'1",
         reason=Reason(rule_ids=("one",), ruleset_version="v1", campaign="c", operator="o",
                       source_event="ev", note="n")),
    Earn("k", "bob", 1, datetime(2027, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=45))),
         kind="referral", reason=Reason(rule_ids=("a", "b", "c"))),
    Earn("k", "bob", True, datetime(2027, 1, 1, tzinfo=UTC)),
    Earn("k", "bob", 5, datetime(2027, 1, 1, tzinfo=UTC), program=BANK,
         reason=Reason(rule_ids=(1, None), note=2)),  # type: ignore[arg-type]
])
def test_the_earn_hash_is_the_general_one(op: Earn) -> None:
    assert request_hash(op) == _general_hash(op)

"""Request fingerprints and the error tree's stable codes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

from points import errors
from points.ledger.model import Earn, Reason, Spend, request_hash

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def test_request_hash_ignores_the_key_and_sees_every_other_field() -> None:
    """Same request under another key hashes equal; any changed field changes the hash."""
    op = Earn("k1", "alice", 10, WHEN, reason=Reason(rule_ids=("r1",), campaign="spring"))
    assert request_hash(op) == request_hash(dataclasses.replace(op, idempotency_key="k2"))
    for change in (
        {"customer_id": "bob"},
        {"amount": 11},
        {"expires_at": WHEN + timedelta(seconds=1)},
        {"program": "ride"},
        {"reason": Reason(rule_ids=("r2",), campaign="spring")},
        {"kind": "referral"},
    ):
        assert request_hash(op) != request_hash(dataclasses.replace(op, **change)), change


def test_request_hash_tells_operation_types_apart() -> None:
    """An earn and a spend with the same fields are different requests."""
    assert request_hash(Spend("k", "alice", 10)) != request_hash(
        Earn("k", "alice", 10, WHEN)
    )


def test_request_hash_is_a_signed_64_bit_integer_and_stable() -> None:
    """The fingerprint fits a BIGINT column and does not depend on the process."""
    value = request_hash(Spend("k", "alice", 10))
    assert -(2**63) <= value < 2**63
    assert value == request_hash(Spend("other", "alice", 10))


def test_request_hash_sees_the_zone_of_a_time() -> None:
    """The same wall time in another zone is a different request field."""
    other = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert request_hash(Earn("k", "a", 1, WHEN)) != request_hash(Earn("k", "a", 1, other))


def test_every_error_has_a_distinct_stable_code() -> None:
    """Codes are unique across the tree, so API and CLI can map them one to one."""
    classes = [getattr(errors, name) for name in errors.__all__
               if isinstance(getattr(errors, name), type)]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    assert all(issubclass(cls, errors.PointsError) for cls in classes)


def test_stored_rejections_rebuild_as_their_own_type() -> None:
    """A code read back from the ledger gives the same error class and message."""
    rebuilt = errors.error_for_code("insufficient_points", "needs 5")
    assert isinstance(rebuilt, errors.InsufficientPoints)
    assert rebuilt == errors.InsufficientPoints("needs 5")
    assert type(errors.error_for_code("from_the_future", "x")) is errors.RequestRejected

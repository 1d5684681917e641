"""Partner message signatures: every verdict, its stable code, and the documented example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from points.signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    SIGNED_AT_HEADER,
    KeyRing,
    SigningKey,
    Verdict,
    compute_signature,
    sign,
    verify,
)

NOW = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
RIDEHAIL = SigningKey("ridehail-k1", "ridehail", b"r" * 32)
ESHOP = SigningKey("eshop-k1", "eshop", b"e" * 32)
KEYS = KeyRing([RIDEHAIL, ESHOP])
TOPIC = "partner.ridehail.events"
BODY = b'{"event_type":"swap_confirmed","swap_id":"sw-1"}'


def check(
    body: bytes = BODY,
    headers: tuple[tuple[str, bytes], ...] | None = None,
    *,
    topic: str = TOPIC,
    now: datetime = NOW,
) -> Verdict:
    headers = sign(BODY, RIDEHAIL, NOW) if headers is None else headers
    return verify(body, headers, topic=topic, keys=KEYS, now=now).verdict


def replace_header(headers: tuple[tuple[str, bytes], ...], name: str, value: bytes) -> tuple[
    tuple[str, bytes], ...
]:
    return tuple((k, value if k == name else v) for k, v in headers)


def test_a_message_signed_with_the_partners_key_on_its_topic_is_valid() -> None:
    """Sign then verify on the key owner's topic, at the signing time: valid."""
    result = verify(BODY, sign(BODY, RIDEHAIL, NOW), topic=TOPIC, keys=KEYS, now=NOW)
    assert result.ok
    assert (result.verdict, result.key_id, result.partner_id) == (
        Verdict.VALID,
        "ridehail-k1",
        "ridehail",
    )


def test_the_verdicts_are_stable_reason_codes() -> None:
    """The DLQ stores these strings; renaming one is a contract change."""
    assert [v.value for v in Verdict] == [
        "valid",
        "unsigned",
        "bad_signature",
        "unknown_key",
        "stale",
        "wrong_topic",
    ]


@pytest.mark.parametrize(
    ("case", "verdict"),
    [
        ("body_changed_by_one_byte", Verdict.BAD_SIGNATURE),
        ("signature_changed", Verdict.BAD_SIGNATURE),
        ("timestamp_moved_without_resigning", Verdict.BAD_SIGNATURE),
        ("signed_with_another_secret_under_the_same_key_id", Verdict.BAD_SIGNATURE),
        ("key_id_unknown", Verdict.UNKNOWN_KEY),
        ("no_headers", Verdict.UNSIGNED),
        ("signature_header_missing", Verdict.UNSIGNED),
        ("signature_header_repeated", Verdict.BAD_SIGNATURE),
        ("signed_at_not_a_number", Verdict.BAD_SIGNATURE),
        ("signature_not_ascii", Verdict.BAD_SIGNATURE),
    ],
)
def test_tampered_forged_or_unsigned_messages_are_refused(case: str, verdict: Verdict) -> None:
    """Each kind of tampering or missing signature gets its own verdict."""
    good = sign(BODY, RIDEHAIL, NOW)
    body, headers = BODY, good
    if case == "body_changed_by_one_byte":
        body = BODY.replace(b"sw-1", b"sw-2")
    elif case == "signature_changed":
        sig = dict(good)[SIGNATURE_HEADER]
        flipped = (b"0" if sig[:1] != b"0" else b"1") + sig[1:]
        headers = replace_header(good, SIGNATURE_HEADER, flipped)
    elif case == "timestamp_moved_without_resigning":
        headers = replace_header(good, SIGNED_AT_HEADER, str(int(NOW.timestamp()) + 1).encode())
    elif case == "signed_with_another_secret_under_the_same_key_id":
        headers = sign(BODY, SigningKey("ridehail-k1", "ridehail", b"x" * 32), NOW)
    elif case == "key_id_unknown":
        headers = sign(BODY, SigningKey("ridehail-k9", "ridehail", b"r" * 32), NOW)
    elif case == "no_headers":
        headers = ()
    elif case == "signature_header_missing":
        headers = tuple(h for h in good if h[0] != SIGNATURE_HEADER)
    elif case == "signature_header_repeated":
        headers = (*good, (SIGNATURE_HEADER, b"00"))
    elif case == "signed_at_not_a_number":
        headers = replace_header(good, SIGNED_AT_HEADER, b"2026-01-01T08:00:00Z")
    elif case == "signature_not_ascii":
        headers = replace_header(good, SIGNATURE_HEADER, "é".encode())
    assert check(body, headers) is verdict


@pytest.mark.parametrize(
    ("age_s", "verdict"),
    [
        (0, Verdict.VALID),
        (300, Verdict.VALID),
        (301, Verdict.STALE),
        (3600, Verdict.STALE),
        (-300, Verdict.VALID),
        (-301, Verdict.STALE),
    ],
)
def test_a_replay_outside_the_window_is_stale(age_s: int, verdict: Verdict) -> None:
    """An authentic message verified more than 300 s after (or before) its signing time is
    stale: a recorded message replayed later cannot pass."""
    assert check(now=NOW + timedelta(seconds=age_s)) is verdict


def test_the_replay_window_is_configurable() -> None:
    """A caller may narrow the window (e.g. 60 s for a fast partner)."""
    headers = sign(BODY, RIDEHAIL, NOW)
    later = NOW + timedelta(seconds=61)
    assert verify(BODY, headers, topic=TOPIC, keys=KEYS, now=later, window_s=60).verdict is (
        Verdict.STALE
    )


def test_a_partner_cannot_speak_on_another_partners_topic() -> None:
    """eshop's authentic signature on ridehail's topic is wrong_topic: a partner acts only as
    itself, even with a valid key."""
    headers = sign(BODY, ESHOP, NOW)
    assert check(BODY, headers, topic=TOPIC) is Verdict.WRONG_TOPIC
    assert check(BODY, headers, topic="partner.eshop.events") is Verdict.VALID


def test_the_topic_rule_can_follow_a_prefix_or_the_requests_topic() -> None:
    """Tests prefix topic names and the simulator verifies our requests: ``topic_for`` says
    which topic a key's partner owns."""
    headers = sign(BODY, RIDEHAIL, NOW)
    result = verify(
        BODY,
        headers,
        topic="t1.partner.ridehail.requests",
        keys=KEYS,
        now=NOW,
        topic_for=lambda pid: f"t1.partner.{pid}.requests",
    )
    assert result.verdict is Verdict.VALID


def test_headers_may_be_given_as_a_mapping() -> None:
    """Callers holding headers in a dict get the same verdict."""
    assert verify(BODY, dict(sign(BODY, RIDEHAIL, NOW)), topic=TOPIC, keys=KEYS, now=NOW).ok


def test_the_documented_worked_example_holds() -> None:
    """docs/partners.md shows this key, time and body; the signature there must stay right
    (it was cross-checked with ``openssl dgst -sha256 -mac HMAC``)."""
    key = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    signature = compute_signature(key, 1767225600, BODY)
    assert signature == "8859d94a68ebd5c84ef86e0a3a1863cac0da3db09687e49a728a0b727d4bfa66"
    headers = dict(sign(BODY, SigningKey("k", "ridehail", key), 1767225600))
    assert headers == {
        KEY_ID_HEADER: b"k",
        SIGNED_AT_HEADER: b"1767225600",
        SIGNATURE_HEADER: signature.encode(),
    }


def test_keys_shorter_than_32_bytes_and_duplicate_key_ids_are_refused() -> None:
    """A weak key or an ambiguous key ring is a configuration error, found at start-up."""
    with pytest.raises(ValueError, match="at least 32"):
        SigningKey("k", "ridehail", b"short")
    with pytest.raises(ValueError, match="duplicate"):
        KeyRing([RIDEHAIL, RIDEHAIL])


def test_the_secret_never_appears_in_a_keys_repr() -> None:
    """Logging a key (or an error holding one) must not leak the secret."""
    assert "rrrr" not in repr(RIDEHAIL)


def test_naive_times_are_refused() -> None:
    """Signing or verifying against a clock without a zone is a programming error."""
    naive = datetime(2026, 1, 1, 8, 0)
    with pytest.raises(ValueError):
        sign(BODY, RIDEHAIL, naive)
    with pytest.raises(ValueError):
        verify(BODY, (), topic=TOPIC, keys=KEYS, now=naive)


def test_key_ring_lists_a_partners_keys_for_rotation() -> None:
    """Several live keys per partner let a partner rotate without downtime."""
    newer = SigningKey("ridehail-k2", "ridehail", b"n" * 32)
    ring = KeyRing([RIDEHAIL, newer, ESHOP])
    assert [k.key_id for k in ring.for_partner("ridehail")] == ["ridehail-k1", "ridehail-k2"]
    assert verify(BODY, sign(BODY, newer, NOW), topic=TOPIC, keys=ring, now=NOW).ok

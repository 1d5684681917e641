"""The API reads the referral secret exactly as the partner worker does: POINTS_REFERRAL_SECRET,
hex-decoded; a secret that is not hex, or two names that disagree, stop it at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from points.api.settings import load_api_settings

JWT = {"POINTS_API__JWT__ALGORITHMS": '["HS256"]', "POINTS_API__JWT__SECRET": "s" * 40}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POINTS_REFERRAL_SECRET", "POINTS_API__REFERRAL_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in JWT.items():
        monkeypatch.setenv(name, value)


def test_the_worker_variable_is_read_and_hex_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """POINTS_REFERRAL_SECRET=<hex> gives the API the very bytes the worker decodes."""
    monkeypatch.setenv("POINTS_REFERRAL_SECRET", "72" * 32)
    assert load_api_settings().referral_secret_bytes() == b"\x72" * 32


def test_the_older_name_is_accepted_when_it_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    """POINTS_API__REFERRAL_SECRET alone, or equal to the new name, still works (hex)."""
    monkeypatch.setenv("POINTS_API__REFERRAL_SECRET", "ab" * 16)
    assert load_api_settings().referral_secret_bytes() == b"\xab" * 16
    monkeypatch.setenv("POINTS_REFERRAL_SECRET", "ab" * 16)
    assert load_api_settings().referral_secret_bytes() == b"\xab" * 16


def test_a_raw_string_secret_stops_the_api_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A non-hex value (the old raw-string habit) is a settings error naming the variable;
    the value itself is not printed."""
    monkeypatch.setenv("POINTS_REFERRAL_SECRET", "my-raw-referral-secret")
    with pytest.raises(ValidationError) as caught:
        load_api_settings()
    assert "POINTS_REFERRAL_SECRET must be hex" in str(caught.value)
    assert "my-raw-referral-secret" not in str(caught.value)


def test_two_different_secrets_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both names set to different values would mint codes onboarding cannot resolve."""
    monkeypatch.setenv("POINTS_REFERRAL_SECRET", "ab" * 16)
    monkeypatch.setenv("POINTS_API__REFERRAL_SECRET", "cd" * 16)
    with pytest.raises(ValueError, match="differ"):
        load_api_settings()


def test_unset_means_no_referral_codes() -> None:
    """Without a secret the route answers 503 not_configured (no made-up code)."""
    assert load_api_settings().referral_secret_bytes() is None

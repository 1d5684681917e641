"""The shipped partner configuration and the rules that keep a bad one from loading."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from adapters.config import (
    DEFAULT_CONFIG_PATH,
    MissingSigningKey,
    load_partners_config,
    resolve_keys,
)
from points.partners import PartnersConfig, UnknownPartner, quote
from tests.unit.adapters.support import CONFIG, make_environ


def raw() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_three_reference_partners_are_configured() -> None:
    """ridehail and eshop answer within seconds and take points back in; the airline is slow
    (48 h deadline), matches names and does not take miles back."""
    assert list(CONFIG.partners) == ["ridehail", "eshop", "airline"]
    ride, shop, air = (CONFIG.get(p) for p in ("ridehail", "eshop", "airline"))
    assert ride.confirmation_deadline_s <= 300 and shop.confirmation_deadline_s <= 300
    assert air.confirmation_deadline_s >= 86_400 and air.member_link_requires_name
    assert ride.inbound.enabled and shop.inbound.enabled and not air.inbound.enabled
    assert air.simulator.reject_rate_bp > 0
    assert CONFIG.timezone == "Asia/Shanghai"
    for p in CONFIG.partners.values():
        assert p.settlement.currency == "CNY"
        assert p.outbound.rate.rounding == "down"


def test_no_partner_gives_back_more_points_than_a_round_trip_cost() -> None:
    """Swapping out and back in never creates points: out rate x in rate <= 1."""
    for p in CONFIG.partners.values():
        if p.inbound.enabled:
            out, back = p.outbound.rate, p.inbound.rate
            assert out.num * back.num <= out.den * back.den, p.id


def test_each_minimum_swap_prices_to_realistic_figures() -> None:
    """Spot check: 1000 points is 250 ride coins; 10 000 points to eshop cost a 100-point fee;
    20 000 points are 1000 miles plus the 200-point airline fee."""
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert quote(CONFIG.get("ridehail"), 1000, now).partner_units == 250
    assert quote(CONFIG.get("eshop"), 10_000, now).fee_points == 100
    q = quote(CONFIG.get("airline"), 20_000, now)
    assert (q.partner_units, q.fee_points) == (1000, 200)


def test_the_file_references_keys_by_environment_variable_only() -> None:
    """No secret in the file: every key is a variable name, and nothing looks like hex."""
    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
    for p in CONFIG.partners.values():
        for ref in p.signing_keys:
            assert ref.env.startswith("POINTS_PARTNER_KEY_")
    assert not any(len(word) >= 32 and all(c in "0123456789abcdef" for c in word)
                   for word in text.split())


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("partners", "ridehail", "outbound", "min_points"), 450, "multiple"),
        (("partners", "ridehail", "outbound", "max_points"), 100, "max_points"),
        (("partners", "airline", "outbound", "rate", "den"), 100_000, "at least one"),
        (("partners", "ridehail", "outbound", "rate", "rounding"), "up", "rounding"),
        (("partners", "ridehail", "outbound", "min_points"), 400.0, "min_points"),
        (("partners", "ridehail", "id"), "eshop", "under key"),
        (("partners", "eshop", "signing_keys"), [{"key_id": "ridehail-2026-01",
                                                  "env": "POINTS_X"}], "unique"),
        (("partners", "eshop", "signing_keys", 0, "env"), "lower_case", "env"),
        (("partners", "eshop", "limits", "yearly_points"), 10, "yearly"),
        (("timezone",), "Mars/Olympus", "time zone"),
        (("partners", "eshop", "surprise"), 1, "surprise"),
    ],
)
def test_an_invalid_configuration_is_refused_with_the_field_named(
    path: tuple[Any, ...], value: Any, message: str
) -> None:
    """Inconsistent limits, rates that buy nothing, rounding up, floats, mismatched ids,
    duplicate key ids, bad env names, unknown zones and unknown keys all fail at load."""
    data = copy.deepcopy(raw())
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(ValidationError, match=message):
        PartnersConfig.model_validate(data)


def test_an_unknown_partner_is_a_typed_error() -> None:
    """Looking up a partner that is not configured raises UnknownPartner (unknown_partner)."""
    with pytest.raises(UnknownPartner) as caught:
        CONFIG.get("bus")
    assert caught.value.code == "unknown_partner"


def test_keys_resolve_from_the_given_environment() -> None:
    """Each partner's first key comes from its variable, hex-decoded, tagged with its partner."""
    keys = resolve_keys(CONFIG, make_environ())
    assert len(keys) == 3
    key = keys.get("airline-2026-01")
    assert key is not None and key.partner_id == "airline"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "is not set"),
        ({"POINTS_PARTNER_KEY_RIDEHAIL": "zz"}, "hex key"),
        ({"POINTS_PARTNER_KEY_RIDEHAIL": "ab" * 8}, "hex key"),
    ],
)
def test_a_missing_or_weak_signing_key_stops_start_up(
    environ: dict[str, str], message: str
) -> None:
    """Without its key a partner cannot be verified: fail at start, naming the variable."""
    with pytest.raises(MissingSigningKey, match=message):
        resolve_keys(CONFIG, environ, partner_ids=["ridehail"])


def test_an_unset_older_key_is_skipped_during_rotation(tmp_path: Path) -> None:
    """Keys are listed newest first; an older key whose variable was removed is just gone."""
    data = raw()
    data["partners"]["ridehail"]["signing_keys"].append(
        {"key_id": "ridehail-2025-01", "env": "POINTS_PARTNER_KEY_RIDEHAIL_OLD"}
    )
    path = tmp_path / "partners.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    config = load_partners_config(path)
    keys = resolve_keys(config, make_environ(config), partner_ids=["ridehail"])
    assert [k.key_id for k in keys.for_partner("ridehail")] == ["ridehail-2026-01"]

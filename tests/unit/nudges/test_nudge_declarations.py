"""The rule file's nudges section is validated with the rules, with errors naming the nudge."""

from __future__ import annotations

from pathlib import Path

import pytest

from points.rules import load_ruleset, parse_ruleset
from points.rules.errors import RuleFileError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "rules-nudges.yaml"

HEAD = """
version: t1
currency: CNY
timezone: Asia/Shanghai
partners:
  eshop: {name: E}
  ridehail: {name: R}
rules:
  - {id: base, kind: base_rate, points: 1, per_minor: 100}
  - {id: fifth, kind: milestone, metric: purchase_count, threshold: 5, badge: regular}
  - {id: weekly, kind: streak, period: week, length: 3, counts: [check_in], points: 10}
nudges:
"""


def problems(section: str) -> str:
    with pytest.raises(RuleFileError) as caught:
        parse_ruleset(HEAD + section, source="r.yaml")
    return str(caught.value)


def test_the_fixture_declares_every_kind() -> None:
    """The test fixture loads: one nudge of each of the five kinds, caps and quiet hours."""
    ruleset = load_ruleset(FIXTURE)
    kinds = {nudge.kind for nudge in ruleset.nudges.messages}
    assert kinds == {
        "milestone_near", "first_partner_purchase", "streak_at_risk", "points_expiring",
        "lifecycle_at_risk",
    }
    assert (ruleset.nudges.caps.per_day, ruleset.nudges.caps.per_week) == (1, 2)


def test_a_rule_file_without_nudges_has_none() -> None:
    """The section is optional: no nudges, default caps."""
    ruleset = parse_ruleset(HEAD.replace("nudges:\n", ""))
    assert ruleset.nudges.messages == []


def test_unknown_kind_and_missing_fields_name_the_nudge() -> None:
    """Shape errors say which nudge (by id) and which field."""
    text = problems(
        "  messages:\n"
        "    - {id: a, kind: bogus, template: t}\n"
        "    - {id: b, kind: milestone_near, target: fifth, template: t}\n"
    )
    assert "field 'nudges.a.kind'" in text
    assert "field 'nudges.b.remaining': Field required" in text


def test_references_are_checked_against_the_rules_and_partners() -> None:
    """A target that is not a milestone/challenge, an unknown partner, a weekly streak."""
    text = problems(
        "  messages:\n"
        "    - {id: a, kind: milestone_near, target: base, remaining: 1, template: t}\n"
        "    - {id: b, kind: first_partner_purchase, suggest: taxi, template: t}\n"
        "    - {id: c, kind: streak_at_risk, streak: weekly, by_local_hour: 20, template: t}\n"
        "    - {id: c, kind: points_expiring, within_days: 7, template: t}\n"
    )
    assert "'nudges.a.target': 'base' is not a milestone or challenge rule" in text
    assert "'nudges.b.suggest': unknown partner 'taxi' (known: eshop, ridehail)" in text
    assert "streak_at_risk needs a daily one" in text
    assert "'nudges.c.id': duplicate nudge id" in text


def test_caps_and_quiet_hours_are_checked() -> None:
    """per_week below per_day, and quiet hours that start where they end, are refused."""
    assert "per_week must be at least per_day" in problems("  caps: {per_day: 3, per_week: 2}\n")
    assert "starts and ends must differ" in problems(
        "  quiet_hours: {starts: '22:00', ends: '22:00'}\n"
    )


def test_a_streak_hour_inside_quiet_hours_is_refused() -> None:
    """A streak nudge due at 22:00 with quiet hours from 21:00 could never be sent."""
    text = HEAD.replace("period: week", "period: day") + (
        "  quiet_hours: {starts: '21:00', ends: '08:00'}\n"
        "  messages:\n"
        "    - {id: s, kind: streak_at_risk, streak: weekly, by_local_hour: 22, template: t}\n"
    )
    with pytest.raises(RuleFileError) as caught:
        parse_ruleset(text)
    assert "'nudges.s.by_local_hour': 22:00 is within quiet_hours" in str(caught.value)

"""Loading rule files: the default rule set is valid, and every error names file, rule, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from points.rules import RuleFileError, load_ruleset
from points.rules.check import main as check_main
from points.rules.ruleset import parse_ruleset

DEFAULT = Path(__file__).resolve().parents[3] / "rules" / "default.yaml"

GOOD = """\
version: "v1"
currency: CNY
timezone: Asia/Shanghai
mcc_groups: {groceries: ["5411"], dining: ["5812"]}
partners: {ridehail: {name: Ride}}
rules:
  - {id: base, kind: base_rate, points: 1, per_minor: 100}
"""


def test_the_default_rule_set_is_valid_and_covers_every_rule_kind() -> None:
    """rules/default.yaml loads, earns in CNY in Beijing time, and uses all nine kinds."""
    ruleset = load_ruleset(DEFAULT)
    assert ruleset.currency == "CNY"
    assert ruleset.timezone == "Asia/Shanghai"
    assert {rule.kind for rule in ruleset.rules} == {
        "base_rate",
        "partner_multiplier",
        "campaign",
        "first_partner_purchase",
        "reactivation",
        "milestone",
        "streak",
        "social",
        "challenge",
    }
    assert set(ruleset.partners) == {"ridehail", "eshop", "airline"}
    assert ruleset.mcc_group("3150") == "travel"
    assert ruleset.mcc_group("4121") == "ride_hailing"


@pytest.mark.parametrize(
    ("rule_yaml", "top_yaml", "rule_id", "field", "fragment"),
    [
        (
            "{id: r1, kind: base_rate, points: 1, per_minor: 0}",
            "",
            "r1",
            "per_minor",
            "greater than 0",
        ),
        ("{id: r1, kind: base_rate, points: 1.5, per_minor: 100}", "", "r1", "points", "integer"),
        (
            "{id: r1, kind: base_rate, points: 1, per_minor: 100, bonus: 3}",
            "",
            "r1",
            "bonus",
            "Extra inputs",
        ),
        ("{id: r1, kind: teleport}", "", "r1", "kind", "does not match"),
        ("{id: r1}", "", "r1", "kind", "kind"),
        ("{kind: base_rate, points: 1, per_minor: 100}", "", "#2", "id", "required"),
        (
            "{id: r1, kind: base_rate, mcc_groups: [fuel], points: 1, per_minor: 100}",
            "",
            "r1",
            "mcc_groups",
            "unknown MCC group 'fuel'",
        ),
        (
            "{id: r1, kind: partner_multiplier, partners: [eshop], multiplier_percent: 200}",
            "",
            "r1",
            "partners",
            "unknown partner 'eshop'",
        ),
        (
            "{id: r1, kind: partner_multiplier, partners: [ridehail], multiplier_percent: 90}",
            "",
            "r1",
            "multiplier_percent",
            "greater than 100",
        ),
        (
            "{id: base, kind: base_rate, points: 2, per_minor: 100}",
            "",
            "base",
            "id",
            "duplicate rule id",
        ),
        ("{id: r1, kind: social, action: share, points: 5}", "", "r1", None, "cap.per_day"),
        (
            "{id: r1, kind: campaign, extra_percent: 10, fixed_points: 5, window: "
            "{starts_at: '2026-01-01T00:00:00+08:00', ends_at: '2026-02-01T00:00:00+08:00'}}",
            "",
            "r1",
            None,
            "exactly one of extra_percent, fixed_points",
        ),
        (
            "{id: r1, kind: campaign, extra_percent: 10, window: "
            "{starts_at: '2026-01-01T00:00:00', ends_at: '2026-02-01T00:00:00+08:00'}}",
            "",
            "r1",
            "window.starts_at",
            "timezone",
        ),
        (
            "{id: r1, kind: challenge, target: 3, points: 10}",
            "",
            "r1",
            "target",
            "only 2 can count",
        ),
        (
            "{id: r1, kind: milestone, metric: purchase_count, threshold: 5}",
            "",
            "r1",
            None,
            "points or a badge",
        ),
        (
            "{id: r1, kind: streak, period: fortnight, length: 3, points: 1}",
            "",
            "r1",
            "period",
            "'day' or 'week'",
        ),
        (
            "{id: r1, kind: base_rate, points: 1, per_minor: 100}",
            "caps: {}\n",
            None,
            "caps",
            "at least one",
        ),
    ],
)
def test_invalid_rules_are_reported_with_file_rule_id_and_field(
    rule_yaml: str, top_yaml: str, rule_id: str | None, field: str | None, fragment: str
) -> None:
    """Each mistake raises RuleFileError whose problem names the rule id and field."""
    text = GOOD.replace("rules:\n", top_yaml + "rules:\n") + f"  - {rule_yaml}\n"
    with pytest.raises(RuleFileError) as caught:
        parse_ruleset(text, source="rules/bad.yaml")
    problems = [(p.rule_id, p.field) for p in caught.value.problems]
    assert (rule_id, field) in problems, caught.value
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("rules/bad.yaml: ")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("version: [\n", "invalid YAML at line"),
        ("- just a list\n", "must be a YAML mapping"),
        (GOOD.replace("Asia/Shanghai", "Mars/Olympus"), "field 'timezone': unknown time zone"),
        (GOOD.replace('dining: ["5812"]', 'dining: ["5400-5420"]'), "overlaps group"),
        (GOOD.replace('dining: ["5812"]', 'dining: ["5900-5800"]'), "backwards"),
        (GOOD.replace("currency: CNY", "currency: yuan"), "field 'currency'"),
    ],
)
def test_file_level_problems_are_reported_with_the_file_name(text: str, fragment: str) -> None:
    """Syntax errors and top-level mistakes name the file and, where there is one, the field."""
    with pytest.raises(RuleFileError, match=fragment) as caught:
        parse_ruleset(text, source="x.yaml")
    assert str(caught.value).startswith("x.yaml: ")


def test_a_missing_file_is_a_rule_file_error(tmp_path: Path) -> None:
    """An unreadable path raises RuleFileError naming it, not a bare OSError."""
    with pytest.raises(RuleFileError, match="cannot read"):
        load_ruleset(tmp_path / "missing.yaml")


def test_check_command_exits_0_for_valid_and_1_for_invalid_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m points.rules.check` prints ok per valid file and the problems otherwise."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD + "  - {id: base, kind: base_rate, points: 1, per_minor: 100}\n")
    assert check_main([str(DEFAULT)]) == 0
    assert "ok, version 2026.11-1" in capsys.readouterr().out
    assert check_main([str(DEFAULT), str(bad)]) == 1
    assert "rule 'base': field 'id': duplicate rule id" in capsys.readouterr().err

"""The use case file: the example is valid; invalid files get every problem listed with its path."""

from __future__ import annotations

import pytest
import yaml
from outcomes.support import churn_data

from valueloop.errors import InvalidInput
from valueloop.examples import example_dir
from valueloop.outcomes.spec import load_spec


def test_the_bundled_example_is_a_complete_use_case():
    spec = load_spec(example_dir("churn") / "valueloop.yaml")
    assert (spec.name, spec.owner, spec.model.target) == ("churn", "olivia", "churn")[:2] + ("churned",)
    assert [k.name for k in spec.kpis] == ["churn_rate", "retention_calls", "recall", "auc"]
    assert {k.kind for k in spec.kpis} == {"business", "model"}
    assert [c.column for c in spec.privacy.columns] == ["name", "email", "birth_date", "postcode"]
    assert spec.members.data_engineer == ["dave"]


def test_every_problem_is_listed_with_its_path(tmp_path):
    data = churn_data()
    data["kpis"][1]["target"] = "high"
    data["kpis"][2]["comparator"] = "=="
    data["name"] = "Churn!"
    data["colour"] = "blue"
    del data["business_goal"]
    data["members"]["privacy_officer"] = ["ana"]
    data["privacy"]["columns"][3]["justification"] = ""
    data["privacy"]["columns"][0]["legal_basis"] = "because"
    data["sources"][0]["kind"] = "excel"
    data["model"]["primary_metric"] = "rmse"
    path = tmp_path / "valueloop.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidInput) as invalid:
        load_spec(path)
    problems = invalid.value.problems
    assert str(invalid.value).startswith(f"{path} is invalid ({len(problems)} problem(s)):\n  - ")
    expected = [
        'kpis[1].target: expected a number, got "high"',
        "kpis[2].comparator: Input should be '<', '<=', '>' or '>=', got \"==\"",
        'name: must match the pattern ^[a-z][a-z0-9_-]{1,63}$, got "Churn!"',
        "colour: unknown field",
        "business_goal: required field is missing",
        "members: privacy_officer: privacy officers are appointed by the admin (`valueloop users appoint "
        "NAME`), never by the use case's own file; remove this line",
        "privacy.columns[3]: keeping personal column 'postcode' needs a justification",
        "privacy.columns[0].legal_basis: Input should be 'consent', 'contract', 'legal_obligation', "
        "'vital_interest', 'public_task' or 'legitimate_interest', got \"because\"",
        "sources[0]: Input tag 'excel' found using 'kind' does not match any of the expected tags: "
        "'csv', 'parquet', 'sql', 'delta'",
        "model: primary_metric 'rmse' does not fit task classification; choose one of accuracy, f1, "
        "log_loss, pr_auc, precision, recall, roc_auc",
    ]
    for problem in expected:
        assert problem in problems
    # the cross-field checks run once the fields themselves are valid
    data = churn_data()
    data["kpis"][1]["name"] = "churn_rate"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidInput) as invalid:
        load_spec(path)
    assert invalid.value.problems == [
        "(document): kpis: each KPI needs a unique name"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: churn\n  title: [unclosed\n", "not valid YAML at line 2, column 8"),
        ("- just\n- a list\n", "is invalid (1 problem(s)):\n  - (document): expected a mapping"),
        ("", "is invalid (1 problem(s)):\n  - (document): expected a mapping"),
    ],
)
def test_a_malformed_file_is_named(tmp_path, text, message):
    path = tmp_path / "valueloop.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as invalid:
        load_spec(path)
    assert str(invalid.value).startswith(str(path))
    assert message in str(invalid.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(InvalidInput, match="use case file .*nowhere.yaml: no such file"):
        load_spec(tmp_path / "nowhere.yaml")


def test_a_retention_is_a_duration_by_the_one_rule(tmp_path):
    """The DPIA's retention is enforced (operate/retention.py), so it is read as valueloop's
    durations are: "24 months" names the rule; a stored column cannot be "not stored"."""
    spec = load_spec(example_dir("churn") / "valueloop.yaml")
    assert [str(c.retention) for c in spec.privacy.columns] == ["not stored", "730d", "730d", "730d"]
    assert spec.privacy.columns[1].retention.delta.days == 730
    data = churn_data()
    data["privacy"]["columns"][1]["retention"] = "24 months"
    data["privacy"]["columns"][2]["retention"] = "not stored"
    path = tmp_path / "valueloop.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidInput) as invalid:
        load_spec(path)
    assert invalid.value.problems == [
        "privacy.columns[1].retention: expected a duration: a whole number and one unit, s, m, h or d "
        "(such as 90s, 15m, 12h or 30d), from 1s to 36500d, or 'not stored' for a dropped column, "
        'got "24 months"',
        "privacy.columns[2]: personal column 'birth_date' is stored (generalize): its retention must be "
        "a duration such as 730d, not 'not stored'",
    ]

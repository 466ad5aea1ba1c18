"""A per-feature model test (invariance, directional) on a column the model never reads cannot
fail, so it is refused: by the use case file where the file tells, by training where the data
does. The example's invariance test reads a real input, and fails a model that leans on it."""

from __future__ import annotations

import pytest
from outcomes.support import churn_data

from valueloop.errors import InvalidInput
from valueloop.examples import load_generator
from valueloop.learn import evaluation, model_tests
from valueloop.learn.dataset import Target, prepare
from valueloop.outcomes.spec import ColumnTreatment, ModelObjective, Treatment, parse_spec

IDENTIFIER = ("it is an identifier: *_id columns and pseudonymized ones are, unless model.features.identifiers "
              "names the identifiers")
CANNOT_FAIL = "a test of a column the model never reads cannot fail"
BINARY = Target("binary", (0, 1), 1)


@pytest.mark.parametrize(("kind", "check", "features", "why"), [
    ("invariance", {"column": "email"}, {}, IDENTIFIER),  # the example's test before: a pseudonym
    ("invariance", {"column": "customer_id"}, {}, IDENTIFIER),
    ("invariance", {"column": "churned"}, {}, "it is model.target"),
    ("invariance", {"column": "tenure_months"}, {"exclude": ["tenure_months"]}, "model.features.exclude lists it"),
    ("invariance", {"column": "tenure_months"}, {"include": ["contract"]}, "model.features.include leaves it out"),
    ("invariance", {"column": "postcode"}, {"identifiers": ["postcode"]}, "model.features.identifiers lists it"),
    ("directional", {"column": "name", "add": 1, "expect": "increase"}, {}, "the privacy section drops it"),
])
def test_the_file_refuses_a_per_feature_test_on_a_column_that_is_no_model_input(kind, check, features, why):
    data = churn_data()
    data["model"]["tests"] = {kind: [check]}
    data["model"]["features"] = features
    with pytest.raises(InvalidInput) as refused:
        parse_spec(data)
    assert refused.value.problems == [
        f"(document): model.tests.{kind}[0]: column '{check['column']}' is not a model input ({why}); {CANNOT_FAIL}"]


def test_training_refuses_one_the_approved_treatments_make_an_identifier():
    """The privacy officer's condition pseudonymizes postcode, which the file generalized."""
    table = load_generator("churn").generate(200, seed=3).drop_columns(["name", "email"])
    objective = ModelObjective.model_validate(
        parse_spec(churn_data()).model.model_dump() | {"tests": {"invariance": [{"column": "postcode"}]}})
    pseudonymized = {"postcode": ColumnTreatment(column="postcode", treatment=Treatment.pseudonymize)}
    with pytest.raises(InvalidInput, match=r"model.tests.invariance: postcode not a model input of dataset "
                                           rf"version 4 \(features: birth_date, contract, .*\); {CANNOT_FAIL}"):
        prepare(table, objective, pseudonymized, 4)
    assert "postcode" in prepare(table, objective, {}, 4).features


def _invariance_verdict(model_columns: list[str]) -> bool:
    """The example's own invariance test on a tree that reads ``model_columns`` of the example's data."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.tree import DecisionTreeClassifier

    objective = parse_spec(churn_data()).model
    objective = objective.model_copy(update={"tests": objective.tests.model_copy(
        update={"directional": [], "segment_floors": []})})
    frame = load_generator("churn").generate(2000, seed=5).to_pandas()
    features = ["monthly_charges", "tenure_months", "support_calls"]
    model = make_pipeline(ColumnTransformer([("read", "passthrough", model_columns)]),
                          DecisionTreeClassifier(random_state=0)).fit(frame[features], frame["churned"])
    y = frame["churned"].to_numpy()
    score = evaluation.scores(model, frame[features], BINARY)
    evaluated = {"metrics": evaluation.metrics(y, score, BINARY), "segments": {}}
    results = model_tests.run(model, objective, BINARY, frame, features, evaluated, None, seed=42,
                              clock=iter([0.0, 0.0]).__next__)
    [verdict] = [r.passed for r in results if r.name.startswith("invariance:")]
    return verdict


def test_the_example_s_invariance_test_fails_a_model_that_leans_on_its_column():
    [check] = parse_spec(churn_data()).model.tests.invariance
    assert check.column == "monthly_charges"
    assert _invariance_verdict(["tenure_months", "support_calls"]) is True
    assert _invariance_verdict(["monthly_charges", "tenure_months"]) is False

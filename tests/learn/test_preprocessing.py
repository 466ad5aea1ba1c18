"""The candidates of a training share their preprocessing, fitted once per set of rows: each
pipeline must predict exactly as the pipeline scikit-learn's own ``Pipeline.fit`` fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from valueloop.examples import load_generator
from valueloop.learn import candidates as kinds
from valueloop.outcomes.spec import Candidate

NUMERIC = ["tenure_months", "monthly_charges", "support_calls"]
CATEGORICAL = ["postcode", "contract", "payment_method"]
CANDIDATES = [Candidate(name="logistic", kind="logistic", baseline=True),
              Candidate(name="lightgbm", kind="lightgbm", params={"n_estimators": 30}),
              Candidate(name="forest", kind="random_forest", params={"n_estimators": 10, "n_jobs": 1})]


def _rows(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    frame = load_generator("churn").generate(rows, seed).to_pandas()
    frame.loc[::17, "monthly_charges"] = np.nan  # for the imputers to fill
    frame.loc[::13, "contract"] = None
    return frame[NUMERIC + CATEGORICAL], frame["churned"]


def test_candidates_sharing_the_preprocessing_predict_as_pipeline_fit_fits_them() -> None:
    X, y = _rows(3000, 7)
    unseen, _ = _rows(1000, 8)
    shared = kinds.Preprocessing(NUMERIC, CATEGORICAL)
    for candidate in CANDIDATES:
        model = kinds.fit(candidate, dict(candidate.params), "classification", 42, shared, X, y)
        alone = clone(model).fit(X, y)  # the same pipeline, unfitted, fitted by scikit-learn
        assert np.array_equal(model.predict_proba(unseen), alone.predict_proba(unseen)), candidate.name
        assert np.array_equal(model[:-1].transform(unseen).toarray(), alone[:-1].transform(unseen).toarray())
    first, second = (kinds.fit(c, dict(c.params), "classification", 42, shared, X, y)[0] for c in CANDIDATES[:2])
    assert first is not second  # each pipeline holds its own copy of the fitted transformer


def test_other_rows_get_their_own_fit() -> None:
    """A search's rows, or the rows left after a validation cut, are not the training rows: the
    transformer is fitted on them, not reused from the rows fitted before."""
    shared = kinds.Preprocessing(NUMERIC, CATEGORICAL)
    candidate = CANDIDATES[0]
    X, y = _rows(3000, 7)
    kinds.fit(candidate, {}, "classification", 42, shared, X, y)
    fewer, y_fewer = X.iloc[:500], y.iloc[:500]  # a rare postcode or two, and other medians
    model = kinds.fit(candidate, {}, "classification", 42, shared, fewer, y_fewer)
    alone = clone(model).fit(fewer, y_fewer)
    assert np.array_equal(model[0].named_transformers_["numeric"][0].statistics_,
                          alone[0].named_transformers_["numeric"][0].statistics_)
    assert np.array_equal(model.predict_proba(X), alone.predict_proba(X))

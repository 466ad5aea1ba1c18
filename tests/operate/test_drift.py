"""The drift engine against scipy on small data, mergeable summaries, thresholds per column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from valueloop.errors import InvalidInput
from valueloop.operate import drift
from valueloop.operate.summary import build_reference, summarize


def _reference(table: pa.Table, bins: int = 100) -> dict:
    return build_reference(lambda columns=None: table.select(columns or table.column_names)
                           .to_batches(max_chunksize=97), bins=bins)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ks_decision_matches_scipy(shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = rng.normal(0, 1, 800), rng.normal(shift, 1, 400)
    reference = _reference(pa.table({"x": ref}), bins=200)
    current = summarize(pa.table({"x": cur}).to_batches(max_chunksize=50), reference)
    ours = drift.column_drift("x", reference["x"], current["x"])
    exact = stats.ks_2samp(ref, cur).pvalue
    assert ours.method == "ks"
    assert ours.drifted == (exact < 0.05)
    if shift >= 0.3:
        assert ours.drifted


@pytest.mark.parametrize("shares", [(0.5, 0.3, 0.2), (0.45, 0.35, 0.2), (0.2, 0.3, 0.5)])
def test_chisquare_equals_scipy(shares: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(5)
    ref = rng.choice(["a", "b", "c"], 900, p=[0.5, 0.3, 0.2])
    cur = rng.choice(["a", "b", "c"], 300, p=list(shares))
    reference = _reference(pa.table({"c": ref}))
    current = summarize(pa.table({"c": cur}).to_batches(), reference)
    ours = drift.column_drift("c", reference["c"], current["c"])
    counts_ref = np.array([(ref == k).sum() for k in "abc"])
    counts_cur = np.array([(cur == k).sum() for k in "abc"])
    expected = stats.chisquare(counts_cur, counts_ref / counts_ref.sum() * counts_cur.sum()).pvalue
    assert ours.method == "chisquare"
    assert ours.score == pytest.approx(expected)
    assert ours.drifted == (expected < 0.05)


def test_unseen_category_drifts_by_chisquare() -> None:
    reference = _reference(pa.table({"c": ["a", "b"] * 100}))
    current = summarize(pa.table({"c": ["a", "b", "z"] * 30}).to_batches(), reference)
    assert drift.column_drift("c", reference["c"], current["c"]).score == 0.0


def test_distances_on_large_data_match_scipy() -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(50, 10, 20_000), rng.normal(53, 12, 20_000)
    cats_ref = rng.choice(list("abcd"), 20_000, p=[0.4, 0.3, 0.2, 0.1])
    cats_cur = rng.choice(list("abcd"), 20_000, p=[0.25, 0.25, 0.25, 0.25])
    reference = _reference(pa.table({"x": ref, "c": cats_ref}))
    current = summarize(pa.table({"x": cur, "c": cats_cur}).to_batches(max_chunksize=4096), reference)
    w = drift.column_drift("x", reference["x"], current["x"])
    js = drift.column_drift("c", reference["c"], current["c"])
    assert (w.method, js.method) == ("wasserstein", "jensenshannon")
    assert w.score == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=0.05)
    shares = lambda a: np.array([(a == k).mean() for k in "abcd"])  # noqa: E731
    assert js.score == pytest.approx(jensenshannon(shares(cats_ref), shares(cats_cur)), rel=1e-6)
    assert w.drifted and js.drifted
    psi = drift.column_drift("c", reference["c"], current["c"], method="psi")
    p, q = shares(cats_ref), shares(cats_cur)
    assert psi.score == pytest.approx(float(np.sum((p - q) * np.log(p / q))), rel=1e-6)


def test_merge_of_two_windows_equals_summary_of_both() -> None:
    rng = np.random.default_rng(3)
    table = pa.table({"x": rng.normal(0, 1, 5000), "c": rng.choice(list("abc"), 5000),
                      "n": pa.array([None if i % 7 == 0 else float(i) for i in range(5000)])})
    reference = _reference(table.slice(0, 2000), bins=30)
    first = summarize(table.slice(2000, 1200).to_batches(), reference)
    second = summarize(table.slice(3200).to_batches(max_chunksize=333), reference)
    both = summarize(table.slice(2000).to_batches(), reference)
    for column in ("x", "c", "n"):
        merged, whole = first[column].merge(second[column]), both[column]
        assert (merged.rows, merged.nulls, merged.values) == (whole.rows, whole.nulls, whole.values) == \
            (3000, whole.nulls, whole.values)
        if whole.kind == "numeric":
            assert merged.counts.tolist() == whole.counts.tolist()
            assert (merged.low, merged.high) == (whole.low, whole.high)
            assert merged.total == pytest.approx(whole.total)
    assert both["n"].nulls == sum(1 for i in range(2000, 5000) if i % 7 == 0)


def test_merge_refuses_other_bins() -> None:
    a = _reference(pa.table({"x": [1.0, 2.0, 3.0]}), bins=10)["x"]
    b = _reference(pa.table({"x": [1.0, 2.0, 3.0]}), bins=20)["x"]
    with pytest.raises(InvalidInput, match="different bin edges"):
        a.merge(b)


def test_thresholds_and_methods_per_column_and_dataset_share() -> None:
    rng = np.random.default_rng(4)
    ref = pa.table({"a": rng.normal(0, 1, 5000), "b": rng.normal(0, 1, 5000), "c": rng.normal(0, 1, 5000)})
    cur = pa.table({"a": rng.normal(0.15, 1, 5000), "b": rng.normal(0.15, 1, 5000), "c": rng.normal(0, 1, 5000)})
    reference = _reference(ref)
    current = summarize(cur.to_batches(), reference)
    default = drift.dataset_drift(reference, current, dataset_share=0.5)
    assert default.drifted == ["a", "b"] and default.dataset_drift
    strict = drift.dataset_drift(reference, current, {"a": ("wasserstein", 0.5)}, dataset_share=0.5)
    assert strict.drifted == ["b"] and strict.share == pytest.approx(1 / 3) and not strict.dataset_drift
    assert strict.columns["a"].threshold == 0.5
    psi = drift.dataset_drift(reference, current, default=("psi", 0.2))
    assert {c.method for c in psi.columns.values()} == {"psi"}


def test_ks_on_a_categorical_column_is_refused() -> None:
    reference = _reference(pa.table({"c": ["a", "b"] * 10}))
    with pytest.raises(InvalidInput, match="drift.columns.c.method: ks needs a numeric column"):
        drift.column_drift("c", reference["c"], reference["c"], method="ks")


def test_dictionary_encoded_text_counts_like_plain_text() -> None:
    plain = pa.table({"c": pa.array(["a", "b", None, "a", "c", "a"] * 50)})
    coded = pa.table({"c": plain["c"].dictionary_encode()})
    reference = _reference(plain)
    assert summarize(coded.to_batches(max_chunksize=7), reference)["c"].to_json() == \
        summarize(plain.to_batches(), reference)["c"].to_json() == reference["c"].to_json()

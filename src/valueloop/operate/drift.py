"""Drift tests computed from summaries, never from raw rows, so a window of any size costs the
same: Kolmogorov-Smirnov from the binned CDFs, normalized Wasserstein from the piecewise-linear
CDFs, chi-square from counts, Jensen-Shannon and PSI from shares.

The defaults follow Evidently's: with at most 1000 reference rows KS (numeric) and chi-square
(categorical) at a p-value of 0.05, above that normalized Wasserstein and Jensen-Shannon at a
distance of 0.1; a column drifts when its p-value is below, or its distance at or above, the
threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import BaseModel

from valueloop.operate.summary import OTHER, ColumnSummary

Method = Literal["ks", "wasserstein", "chisquare", "jensenshannon", "psi"]
P_VALUE_METHODS = frozenset({"ks", "chisquare"})
SMALL = 1000
_EPSILON = 1e-4  # Evidently's floor for an empty share, so logarithms and ratios stay finite


class ColumnDrift(BaseModel):
    column: str
    kind: str
    method: Method
    threshold: float
    #: the p-value for ks and chisquare, the distance otherwise
    score: float
    drifted: bool
    rows: int


class DatasetDrift(BaseModel):
    columns: dict[str, ColumnDrift]
    drifted: list[str]
    share: float
    dataset_share: float
    dataset_drift: bool


def default_method(kind: str, reference_rows: int) -> Method:
    if kind == "numeric":
        return "ks" if reference_rows <= SMALL else "wasserstein"
    return "chisquare" if reference_rows <= SMALL else "jensenshannon"


def default_threshold(method: Method) -> float:
    return 0.05 if method in P_VALUE_METHODS else 0.1


def _cdf_at_edges(summary: ColumnSummary) -> np.ndarray:
    assert summary.counts is not None
    present = max(summary.present, 1)
    return np.concatenate([[0.0], np.cumsum(summary.counts) / present])


def ks(reference: ColumnSummary, current: ColumnSummary) -> float:
    """Two-sample KS p-value; D is taken at the bin edges, where both CDFs are known exactly."""
    from scipy.stats import kstwo

    d = float(np.max(np.abs(_cdf_at_edges(reference) - _cdf_at_edges(current))))
    n, m = reference.present, current.present
    return float(kstwo.sf(d, max(round(n * m / (n + m)), 1)))


def wasserstein(reference: ColumnSummary, current: ColumnSummary) -> float:
    """W1 between the two distributions, each taken as uniform within its bins, divided by the
    reference's standard deviation (Evidently's normalization, floored at 0.001)."""
    assert reference.edges is not None
    edges = reference.edges
    low = min(edges[0], reference.low, current.low)
    high = max(edges[-1], reference.high, current.high)
    points = np.concatenate([[low], edges, [high]])
    gap = _cdf_at_edges(reference) - _cdf_at_edges(current)
    a, b, width = gap[:-1], gap[1:], np.diff(points)
    same_sign = a * b >= 0
    magnitude = np.abs(a) + np.abs(b)
    crossing = np.divide(a * a + b * b, 2 * magnitude, out=np.zeros_like(a), where=magnitude > 0)
    area = np.where(same_sign, magnitude / 2, crossing) * width
    return float(area.sum() / max(reference.std, 0.001))


def _categories(reference: ColumnSummary, current: ColumnSummary) -> tuple[np.ndarray, np.ndarray]:
    """Counts per category on both sides. When the reference knows only its top values (the rest
    pooled as OTHER), the current values it does not list are pooled the same way."""
    values = current.values
    if not reference.complete:
        values = {}
        for key, count in current.values.items():
            pooled = key if key in reference.values else OTHER
            values[pooled] = values.get(pooled, 0) + count
    keys = sorted(set(reference.values) | set(values))
    return (np.array([reference.values.get(k, 0) for k in keys], float),
            np.array([values.get(k, 0) for k in keys], float))


def _shares(reference: ColumnSummary, current: ColumnSummary) -> tuple[np.ndarray, np.ndarray]:
    """Each side's share per bin or category (of all its rows, nulls included, as Evidently)."""
    if reference.kind == "numeric":
        assert reference.counts is not None and current.counts is not None
        ref, cur = reference.counts.astype(float), current.counts.astype(float)
    else:
        ref, cur = _categories(reference, current)
    ref, cur = ref / max(reference.rows, 1), cur / max(current.rows, 1)
    return np.where(ref == 0, _EPSILON, ref), np.where(cur == 0, _EPSILON, cur)


def jensenshannon(reference: ColumnSummary, current: ColumnSummary) -> float:
    """scipy.spatial.distance.jensenshannon's steps on scipy.special's relative entropy: importing
    scipy.spatial loads sparse matrices, linear algebra and k-d trees, 12 MiB a drift run never uses."""
    from scipy.special import rel_entr

    p, q = _shares(reference, current)
    p, q = p / np.sum(p), q / np.sum(q)
    m = (p + q) / 2.0
    return float(np.sqrt((np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / 2.0))


def psi(reference: ColumnSummary, current: ColumnSummary) -> float:
    ref, cur = _shares(reference, current)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def chisquare(reference: ColumnSummary, current: ColumnSummary) -> float:
    """Pearson's chi-square p-value of the current counts against the reference's shares; a value
    the reference never saw makes the p-value 0."""
    from scipy.stats import chisquare as chi2

    if reference.kind == "numeric":
        assert reference.counts is not None and current.counts is not None
        expected_share = reference.counts / max(reference.present, 1)
        observed = current.counts.astype(float)
    else:
        counts, observed = _categories(reference, current)
        expected_share = counts / max(reference.present, 1)
    expected = expected_share * observed.sum()
    if np.any((expected == 0) & (observed > 0)):
        return 0.0
    keep = expected > 0
    if keep.sum() < 2:
        return 1.0
    return float(chi2(observed[keep], expected[keep]).pvalue)


TESTS = {"ks": ks, "wasserstein": wasserstein, "chisquare": chisquare, "jensenshannon": jensenshannon, "psi": psi}


def column_drift(name: str, reference: ColumnSummary, current: ColumnSummary,
                 method: Method | None = None, threshold: float | None = None) -> ColumnDrift:
    method = method or default_method(reference.kind, reference.present)
    if method == "ks" or method == "wasserstein":
        if reference.kind != "numeric":
            from valueloop.errors import InvalidInput

            raise InvalidInput(f"drift.columns.{name}.method: {method} needs a numeric column; "
                               f"'{name}' is categorical (use chisquare, jensenshannon or psi)")
    threshold = threshold if threshold is not None else default_threshold(method)
    score = TESTS[method](reference, current)
    drifted = score < threshold if method in P_VALUE_METHODS else score >= threshold
    return ColumnDrift(column=name, kind=reference.kind, method=method, threshold=threshold,
                       score=score, drifted=bool(drifted), rows=current.rows)


def dataset_drift(reference: Mapping[str, ColumnSummary], current: Mapping[str, ColumnSummary],
                  overrides: Mapping[str, tuple[Method | None, float | None]] | None = None,
                  default: tuple[Method | None, float | None] = (None, None),
                  dataset_share: float = 0.5) -> DatasetDrift:
    """Drift of every column both sides hold; the dataset drifts when ``dataset_share`` of them do."""
    overrides = overrides or {}
    results = {}
    for name, ref in reference.items():
        cur = current.get(name)
        if cur is None or cur.present == 0:
            continue
        method, threshold = overrides.get(name, default)
        results[name] = column_drift(name, ref, cur, method, threshold)
    drifted = sorted(n for n, r in results.items() if r.drifted)
    share = len(drifted) / len(results) if results else 0.0
    return DatasetDrift(columns=results, drifted=drifted, share=share, dataset_share=dataset_share,
                        dataset_drift=bool(results) and share >= dataset_share)

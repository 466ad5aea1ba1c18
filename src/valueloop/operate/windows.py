"""One monitor window of the prediction log: drift of every feature and of the prediction against
the reference, missing values, unseen categories, performance from labels (or its estimate), and
latency; plus the cutting of the log into windows by time or by count."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from valueloop.operate import performance
from valueloop.operate.drift import ColumnDrift, Method, column_drift, dataset_drift
from valueloop.operate.summary import ColumnSummary, summarize
from valueloop.outcomes.spec import DriftPolicy, Window

from valueloop.learn.dataset import Target

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Reference:
    """What the model was trained on, summarized: per feature, and the target (for prediction drift)."""

    version: int | None
    rows: int
    columns: dict[str, ColumnSummary]
    target: ColumnSummary | None = None
    #: what the model in service predicts (a 0/1 binary classifier when no model says otherwise)
    predicts: Target = field(default_factory=lambda: Target("binary", (0, 1), 1))
    problems: list[str] = field(default_factory=list)


class Missing(BaseModel):
    share: float
    reference_share: float
    rising: bool
    absent: bool = False


class Unseen(BaseModel):
    values: list[str]
    rows: int
    share: float


class WindowReport(BaseModel):
    start: datetime
    end: datetime
    rows: int
    labeled: int
    model_versions: list[str]
    drift: dict[str, ColumnDrift]
    drifted: list[str]
    drift_share: float
    dataset_drift: bool
    prediction_drift: ColumnDrift | None
    missing: dict[str, Missing]
    unseen: dict[str, Unseen]
    performance: dict[str, float]
    estimate: dict[str, float]
    #: True when the window has no labels yet and ``estimate`` stands in for ``performance``
    estimated: bool
    latency: dict[str, float]
    problems: list[str]

    def values(self) -> dict[str, float]:
        """Every monitored value by the name alert rules use."""
        flat: dict[str, float] = {
            "rows": self.rows, "labeled": self.labeled, "dataset_drift_share": self.drift_share,
            "dataset_drift": float(self.dataset_drift),
        }
        flat |= {f"drift.{c}": d.score for c, d in self.drift.items()}
        flat |= {f"drifted.{c}": float(d.drifted) for c, d in self.drift.items()}
        flat |= {f"missing.{c}": m.share for c, m in self.missing.items()}
        flat |= {f"unseen.{c}": u.share for c, u in self.unseen.items()}
        flat |= {f"performance.{k}": v for k, v in self.performance.items()}
        flat |= {f"estimated.{k}": v for k, v in self.estimate.items()}
        flat |= {f"latency_{k}_seconds": v for k, v in self.latency.items()}
        if self.prediction_drift is not None:
            flat["prediction_drift"] = self.prediction_drift.score
            flat["prediction_drifted"] = float(self.prediction_drift.drifted)
        return flat


def cut(log: pa.Table, window: Window) -> list[tuple[datetime, datetime, pa.Table]]:
    """The log's windows, oldest first: fixed time buckets aligned to the epoch, or runs of
    ``rows`` predictions in time order (the last may be short)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if log.num_rows == 0:
        return []
    log = log.sort_by("ts")
    micros = pc.cast(log["ts"], pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    parts = []
    if window.rows is not None:
        for offset in range(0, log.num_rows, window.rows):
            stop = min(offset + window.rows, log.num_rows)
            start, end = _moment(micros[offset]), _moment(micros[stop - 1] + 1)
            parts.append((start, end, log.slice(offset, stop - offset)))
        return parts
    assert window.every is not None
    step = int(window.every.delta.total_seconds() * 1_000_000)
    buckets = micros // step
    for bucket in np.unique(buckets):
        rows = np.flatnonzero(buckets == bucket)
        parts.append((_moment(bucket * step), _moment((bucket + 1) * step),
                      log.slice(int(rows[0]), len(rows))))
    return parts


def _moment(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))


def _overrides(policy: DriftPolicy) -> tuple[dict[str, tuple[Method | None, float | None]],
                                              tuple[Method | None, float | None]]:
    default = (None if policy.method == "auto" else policy.method, policy.threshold)
    columns = {name: (c.method or default[0], c.threshold if c.threshold is not None else default[1])
               for name, c in policy.columns.items()}
    return columns, default


def _predictions(part: pa.Table, reference: Reference) -> ColumnSummary | None:
    if reference.target is None:
        return None
    current = reference.target.empty_like()
    if reference.target.kind == "categorical":
        tokens = [performance.token(v) for v in part["prediction"].to_pylist() if v is not None]
        current.rows, current.nulls = part.num_rows, part.num_rows - len(tokens)
        for t in tokens:
            current.values[t] = current.values.get(t, 0) + 1
    else:
        current.add(part["prediction"])
    return current


def assess(part: pa.Table, start: datetime, end: datetime, reference: Reference,
           policy: DriftPolicy, labels: Mapping[str, Any]) -> WindowReport:
    """Everything monitored about one window's predictions."""
    import pyarrow.compute as pc

    rows = part.num_rows
    problems = list(reference.problems)
    current = summarize(part.to_batches(), reference.columns)
    absent = sorted(set(reference.columns) - set(current))
    if absent:
        problems.append(f"feature(s) missing from the prediction log: {', '.join(absent)}; "
                        "their drift cannot be measured")
    overrides, default = _overrides(policy)
    drift = dataset_drift(reference.columns, current, overrides, default, policy.dataset_share)
    missing = {}
    for name, ref in reference.columns.items():
        cur = current.get(name)
        share = 1.0 if cur is None else cur.null_share
        missing[name] = Missing(share=share, reference_share=ref.null_share,
                                rising=share - ref.null_share >= max(policy.missing_increase, 1e-12),
                                absent=cur is None)
    unseen = {}
    for name, cur in current.items():
        ref = reference.columns[name]
        if cur.kind == "categorical" and ref.complete:
            new = {v: n for v, n in cur.values.items() if v not in ref.values}
            if new:
                count = sum(new.values())
                unseen[name] = Unseen(values=sorted(new, key=new.get, reverse=True)[:10], rows=count,
                                      share=count / max(cur.rows, 1))
    predicted = _predictions(part, reference)
    prediction_drift = None
    if predicted is not None and reference.target is not None and predicted.present:
        prediction_drift = column_drift("prediction", reference.target, predicted)

    ids = part["request_id"].to_pylist()
    preds = part["prediction"].to_pylist()
    probs = part["probability"].to_pylist() if "probability" in part.column_names else [None] * rows
    known = [i for i, r in enumerate(ids) if r in labels]
    measured = performance.measure(reference.predicts, [preds[i] for i in known],
                                   [labels[ids[i]] for i in known], [probs[i] for i in known])
    estimate = performance.estimate(reference.predicts, preds, probs)
    latency: dict[str, float] = {}
    if "latency_seconds" in part.column_names:
        seconds = part["latency_seconds"].to_numpy(zero_copy_only=False).astype(float)
        seconds = seconds[~np.isnan(seconds)]
        if len(seconds):
            latency = {"mean": float(seconds.mean()), "p50": float(np.quantile(seconds, 0.5)),
                       "p95": float(np.quantile(seconds, 0.95)), "p99": float(np.quantile(seconds, 0.99))}
    return WindowReport(
        start=start, end=end, rows=rows, labeled=len(known),
        model_versions=sorted(str(v) for v in pc.unique(part["model_version"]).to_pylist() if v is not None),
        drift=drift.columns, drifted=drift.drifted, drift_share=drift.share, dataset_drift=drift.dataset_drift,
        prediction_drift=prediction_drift, missing=missing, unseen=unseen, performance=measured,
        estimate=estimate, estimated=not measured and bool(estimate), latency=latency, problems=problems,
    )

"""Mergeable per-column summaries of a stream of Arrow record batches.

A numeric column is counted into fixed bins on the reference's edges (plus an underflow and an
overflow bin), a categorical one into value counts; both keep their null count. Memory depends on
the number of bins and categories, never on the number of rows, and two windows' summaries add up
to the summary of both, so windows merge without going back to the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

Kind = Literal["numeric", "categorical"]
#: the pooled count of the values a reference does not list (it keeps only its top values)
OTHER = "\x00other"


@dataclass
class ColumnSummary:
    kind: Kind
    rows: int = 0
    nulls: int = 0
    #: numeric: the k+1 bin edges and k+2 counts (underflow, k bins, overflow)
    edges: np.ndarray | None = None
    counts: np.ndarray | None = None
    low: float = np.inf
    high: float = -np.inf
    total: float = 0.0
    total_sq: float = 0.0
    #: categorical: count per value; ``complete`` is False when only the top values are known
    values: dict[str, int] = field(default_factory=dict)
    complete: bool = True

    @property
    def present(self) -> int:
        return self.rows - self.nulls

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def std(self) -> float:
        if self.present == 0:
            return 0.0
        mean = self.total / self.present
        return float(np.sqrt(max(self.total_sq / self.present - mean * mean, 0.0)))

    def empty_like(self) -> ColumnSummary:
        """A zero summary on the same bins, ready to count a window into."""
        if self.kind == "numeric":
            assert self.edges is not None
            return ColumnSummary("numeric", edges=self.edges, counts=np.zeros(len(self.edges) + 1, np.int64))
        return ColumnSummary("categorical")

    def merge(self, other: ColumnSummary) -> ColumnSummary:
        if self.kind != other.kind:
            raise InvalidInput(f"cannot merge a {self.kind} summary with a {other.kind} one")
        merged = ColumnSummary(self.kind, rows=self.rows + other.rows, nulls=self.nulls + other.nulls,
                               complete=self.complete and other.complete)
        if self.kind == "numeric":
            if self.edges is None or other.edges is None or not np.array_equal(self.edges, other.edges):
                raise InvalidInput("cannot merge numeric summaries counted on different bin edges")
            assert self.counts is not None and other.counts is not None
            merged.edges, merged.counts = self.edges, self.counts + other.counts
            merged.low, merged.high = min(self.low, other.low), max(self.high, other.high)
            merged.total, merged.total_sq = self.total + other.total, self.total_sq + other.total_sq
        else:
            merged.values = dict(self.values)
            for value, count in other.values.items():
                merged.values[value] = merged.values.get(value, 0) + count
        return merged

    def add(self, column: pa.Array | pa.ChunkedArray) -> None:
        """Count one batch's column into this summary."""
        self.rows += len(column)
        if self.kind == "numeric":
            self._add_numeric(column)
        else:
            self._add_categorical(column)

    def _add_numeric(self, column: pa.Array | pa.ChunkedArray) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        assert self.edges is not None and self.counts is not None
        data = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        data = data[~np.isnan(data)]
        self.nulls += len(column) - len(data)
        if len(data) == 0:
            return
        index = np.searchsorted(self.edges, data, side="right")
        index[data == self.edges[-1]] = len(self.edges) - 1  # the last bin is closed, as np.histogram's
        self.counts += np.bincount(index, minlength=len(self.counts))
        self.low, self.high = min(self.low, float(data.min())), max(self.high, float(data.max()))
        self.total += float(data.sum())
        self.total_sq += float(np.dot(data, data))

    def _add_categorical(self, column: pa.Array | pa.ChunkedArray) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.nulls += column.null_count
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            column = pc.cast(column, pa.string())
        counted = pc.value_counts(column)
        for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            if value is not None:
                self.values[value] = self.values.get(value, 0) + count

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "rows": self.rows, "nulls": self.nulls}
        if self.kind == "numeric":
            assert self.edges is not None and self.counts is not None
            data |= {"edges": self.edges.tolist(), "counts": self.counts.tolist(),
                     "low": None if self.present == 0 else self.low,
                     "high": None if self.present == 0 else self.high,
                     "total": self.total, "total_sq": self.total_sq}
        else:
            data |= {"values": self.values, "complete": self.complete}
        return data


def kind_of(data_type: pa.DataType) -> Kind:
    import pyarrow as pa

    numeric = pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type)
    return "numeric" if numeric else "categorical"


def summarize(batches: Iterable[pa.RecordBatch], reference: Mapping[str, ColumnSummary]) -> dict[str, ColumnSummary]:
    """Count the batches' columns that the reference knows, on the reference's bins, in one pass.
    A column the batches lack stays absent from the result."""
    summaries: dict[str, ColumnSummary] = {}
    for batch in batches:
        for name, ref in reference.items():
            if name in batch.schema.names:
                summaries.setdefault(name, ref.empty_like()).add(batch.column(name))
    return summaries


def build_reference(batches: Callable[[], Iterable[pa.RecordBatch]], columns: Iterable[str] | None = None,
                    bins: int = 100) -> dict[str, ColumnSummary]:
    """A reference summary straight from data, in two streaming passes: ranges and categories
    first, then counts on equal-width bins over each numeric column's range."""
    first: dict[str, ColumnSummary] = {}
    wanted = set(columns) if columns is not None else None
    for batch in batches():
        for name in batch.schema.names:
            if wanted is not None and name not in wanted:
                continue
            summary = first.get(name)
            if summary is None:
                kind = kind_of(batch.schema.field(name).type)
                summary = first[name] = ColumnSummary(
                    kind, edges=np.array([0.0, 1.0]) if kind == "numeric" else None,
                    counts=np.zeros(3, np.int64) if kind == "numeric" else None)
            summary.add(batch.column(name))
    numeric = {}
    for name, summary in first.items():
        if summary.kind == "numeric":
            low, high = (summary.low, summary.high) if summary.present else (0.0, 1.0)
            if high <= low:
                low, high = low - 0.5, high + 0.5
            numeric[name] = ColumnSummary("numeric", edges=np.linspace(low, high, bins + 1),
                                          counts=np.zeros(bins + 2, np.int64))
    for name, counted in summarize(batches(), numeric).items():
        first[name] = counted
    return first

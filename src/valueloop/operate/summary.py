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

        assert self.edges is not None and self.counts is not None
        data = _values(column, np.float64)
        if pa.types.is_floating(column.type):  # NaN counts as missing too
            missing = np.isnan(data)
            if missing.any():
                data = data[~missing]
        self.nulls += len(column) - len(data)
        if len(data) == 0:
            return
        self.counts += np.bincount(self._bins(data), minlength=len(self.counts))
        self.low, self.high = min(self.low, float(data.min())), max(self.high, float(data.max()))
        self.total += float(data.sum())
        self.total_sq += float(np.einsum("i,i->", data, data))  # np.dot would wake BLAS's threads

    def _bins(self, data: np.ndarray) -> np.ndarray:
        """Bin index per value (0 underflow, k+1 overflow); [e_i, e_i+1), the last bin closed as
        numpy.histogram's. Equal-width edges (the Data profile's, the reference's) are computed
        with arithmetic, as the profile counted them; any other edges by binary search."""
        assert self.edges is not None
        edges, k = self.edges, len(self.edges) - 1
        width = (edges[-1] - edges[0]) / k
        if width > 0 and np.allclose(np.diff(edges), width):
            index = np.floor((data - edges[0]) / width).astype(np.int64) + 1
            np.clip(index, 0, k + 1, out=index)
        else:
            index = np.searchsorted(edges, data, side="right")
        index[data == edges[-1]] = k
        return index

    def _add_categorical(self, column: pa.Array | pa.ChunkedArray) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.nulls += column.null_count
        if pa.types.is_dictionary(column.type):  # count the codes, never materialize the strings
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            pairs = []
            for chunk in chunks:
                counts = np.bincount(_values(chunk.indices, np.int64), minlength=len(chunk.dictionary))
                pairs += zip(pc.cast(chunk.dictionary, pa.string()).to_pylist(), counts.tolist())
        else:
            if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
                column = pc.cast(column, pa.string())
            counted = pc.value_counts(column)
            pairs = list(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()))
        for value, count in pairs:
            if value is not None and count:
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


def _values(column: pa.Array | pa.ChunkedArray, dtype: type[np.float64 | np.int64]) -> np.ndarray:
    """The column's non-null values as ``dtype``, viewed by NumPy without a copy: pyarrow's
    ``to_numpy`` imports pandas (some 40 MiB) on its first call."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pc.drop_null(pc.cast(column, pa.from_numpy_dtype(dtype)))
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset:array.offset + len(array)] \
        if len(array) else np.empty(0, dtype)


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


def build_reference(batches: Callable[..., Iterable[pa.RecordBatch]], bins: int = 100) -> dict[str, ColumnSummary]:
    """A reference summary straight from data in two streaming passes: ``batches()`` yields every
    column, for the categories and each number's range; ``batches(columns=[...])`` only the
    numeric ones, counted on equal-width bins over that range."""
    import pyarrow.compute as pc

    order: list[str] = []
    ranges: dict[str, tuple[float, float]] = {}
    categorical: dict[str, ColumnSummary] = {}
    for batch in batches():
        for name, column in zip(batch.schema.names, batch.columns):
            if name not in order:
                order.append(name)
            if kind_of(column.type) == "categorical":
                categorical.setdefault(name, ColumnSummary("categorical")).add(column)
                continue
            found = pc.min_max(column).as_py()
            low, high = ranges.get(name, (np.inf, -np.inf))
            if found["min"] is not None and not np.isnan(found["min"]):
                low, high = min(low, float(found["min"])), max(high, float(found["max"]))
            ranges[name] = (low, high)
    numeric = {}
    for name, (low, high) in ranges.items():
        if not np.isfinite(low):
            low, high = 0.0, 1.0
        if high <= low:
            low, high = low - 0.5, high + 0.5
        numeric[name] = ColumnSummary("numeric", edges=np.linspace(low, high, bins + 1),
                                      counts=np.zeros(bins + 2, np.int64))
    counted = summarize(batches(columns=list(numeric)), numeric) if numeric else {}
    for name, summary in numeric.items():  # a column with no rows at all still has its bins
        counted.setdefault(name, summary)
    return {name: categorical.get(name) or counted[name] for name in order}

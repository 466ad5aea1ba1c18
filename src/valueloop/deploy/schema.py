"""Input validation compiled once per model from its MLflow signature (and the categories its
fitted encoders know), then applied to every request without pydantic or pandas.

Coercion rules (what a request may send for each signature type):

========================  =====================================================================
signature type            accepted values
========================  =====================================================================
double, float             finite JSON numbers (integers become floats); ``NaN`` only when the
                          column is optional; ``Infinity``, ``1e309``, booleans and strings are
                          refused
long, integer             JSON integers within 64 (long) or 32 (integer) bits, and floats with
                          no fraction (``3.0`` → ``3``); ``3.5``, booleans and strings are refused
boolean                   ``true`` / ``false`` only (not 0/1, not "yes")
string                    JSON strings; when the model's fitted encoder knows the column's
                          categories, only those (an unknown category is refused)
datetime                  ISO 8601 strings (``2024-05-01`` or ``2024-05-01T10:00:00``)
========================  =====================================================================

Every required column must be present and not null; an optional column may be missing or null
(a missing number becomes ``NaN``). A field the signature does not name is refused. Each
problem is reported as ``[row].field: rule, got value`` (at most 20 per request), with 422.

Batch and stream scoring hold their rows as Arrow columns: :meth:`Validator.table` applies the
same rules to them column by column (vectorized, no loop over rows), with the same messages,
so a model has one contract whichever way a record arrives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

MAX_PROBLEMS = 20
NUMERIC = ("double", "float", "long", "integer", "boolean")


class _Refused(Exception):
    """A value breaks its column's rule; carries the rule."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = True
    categories: frozenset[str] | None = None

    def describe(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        if self.categories is not None:
            shown["categories"] = sorted(self.categories)
        return shown


_INFINITE = (math.inf, -math.inf)


def _number(required: bool) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        t = type(v)
        if t is float:
            if v != v:
                if required:
                    raise _Refused("NaN is not allowed in a required column")
                return v
            if v in _INFINITE:
                raise _Refused("must be a finite number")
            return v
        if t is int:
            try:
                return float(v)
            except OverflowError:
                raise _Refused("must be a finite number") from None
        if v is None:
            if required:
                raise _Refused("required, must not be null")
            return math.nan
        raise _Refused("expected a number")
    return check


def _integer(required: bool, bits: int) -> Callable[[Any], Any]:
    low, high, rule = -(1 << (bits - 1)), (1 << (bits - 1)) - 1, f"must be a {bits}-bit integer"

    def check(v: Any) -> Any:
        t = type(v)
        if t is float and v.is_integer():
            v, t = int(v), int
        if t is int:
            if not low <= v <= high:
                raise _Refused(rule)
            return v
        if v is None:
            if required:
                raise _Refused("required, must not be null")
            return None
        raise _Refused("expected an integer")
    return check


def _boolean(required: bool) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if type(v) is bool:
            return v
        if v is None and not required:
            return None
        raise _Refused("required, must not be null" if v is None else "expected true or false")
    return check


def _string(required: bool, categories: frozenset[str] | None) -> Callable[[Any], Any]:
    known = ", ".join(sorted(categories)) if categories is not None else ""

    def check(v: Any) -> Any:
        if type(v) is str:
            if categories is not None and v not in categories:
                raise _Refused(f"unknown category; known: {known}")
            return v
        if v is None and not required:
            return None
        raise _Refused("required, must not be null" if v is None else "expected a string")
    return check


def _datetime(required: bool) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if type(v) is str:
            try:
                datetime.fromisoformat(v)
            except ValueError:
                raise _Refused("expected an ISO 8601 date or date-time") from None
            return v
        if v is None and not required:
            return None
        raise _Refused("required, must not be null" if v is None else "expected an ISO 8601 string")
    return check


def _checker(column: Column) -> Callable[[Any], Any]:
    kind = column.type
    if kind in ("double", "float"):
        return _number(column.required)
    if kind in ("long", "integer"):
        return _integer(column.required, 64 if kind == "long" else 32)
    if kind == "boolean":
        return _boolean(column.required)
    if kind == "string":
        return _string(column.required, column.categories)
    if kind == "datetime":
        return _datetime(column.required)
    raise InvalidInput(f"signature column '{column.name}': type {kind!r} cannot be served over JSON")


def _shown(value: Any) -> str:
    return repr(value)[:60]


class Validator:
    """Checks and coerces a request's rows, given as records or as columns, into columns."""

    def __init__(self, columns: Sequence[Column], accepted: str | None = None) -> None:
        self.columns = list(columns)
        self.names = [c.name for c in self.columns]
        #: what an unknown field's message says is accepted instead
        self.accepted = accepted or f"the model's fields are {', '.join(self.names)}"
        self._known = frozenset(self.names)
        self._checks = [(c.name, c.required, _checker(c)) for c in self.columns]
        self.numeric = all(c.type in NUMERIC for c in self.columns)

    def _fail(self, problems: list[str]) -> None:
        raise InvalidInput(f"input is invalid ({len(problems)} problem(s))", problems=problems[:MAX_PROBLEMS])

    def records(self, records: Sequence[Any]) -> dict[str, list[Any]]:
        """Rows as JSON objects (``[{"tenure_months": 3, ...}, ...]``)."""
        if not records:
            raise InvalidInput("input is empty: send at least one row")
        out: dict[str, list[Any]] = {n: [] for n in self.names}
        problems: list[str] = []
        for i, record in enumerate(records):
            if type(record) is not dict:
                problems.append(f"[{i}]: expected an object of field values, got {_shown(record)}")
                continue
            if len(problems) >= MAX_PROBLEMS:
                break
            for name, required, check in self._checks:
                value = record.get(name, _MISSING)
                if value is _MISSING:
                    if required:
                        problems.append(f"[{i}].{name}: required field is missing")
                        continue
                    value = None
                try:
                    out[name].append(check(value))
                except _Refused as refused:
                    problems.append(f"[{i}].{name}: {refused}, got {_shown(value)}")
            if len(record) > len(self.names) or not self._known.issuperset(record):
                problems += [f"[{i}].{k}: unknown field; {self.accepted}"
                             for k in record if k not in self._known]
        if problems:
            self._fail(problems)
        return out

    def columns_of(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        """Rows as one list per field (``{"tenure_months": [3, 5], ...}``)."""
        problems = [f"{k}: unknown field; {self.accepted}"
                    for k in columns if k not in self._known]
        lengths = {len(v) for v in columns.values() if isinstance(v, list | tuple)}
        if len(lengths) > 1:
            problems.append(f"columns have different lengths: {sorted(lengths)}")
        rows = lengths.pop() if len(lengths) == 1 else 0
        if not problems and rows == 0:
            raise InvalidInput("input is empty: send at least one row")
        out: dict[str, list[Any]] = {}
        for name, required, check in self._checks:
            values = columns.get(name)
            if values is None:
                if required:
                    problems.append(f"{name}: required field is missing")
                    continue
                values = [None] * rows
            if not isinstance(values, list | tuple):
                problems.append(f"{name}: expected a list of values, got {_shown(values)}")
                continue
            checked = []
            for i, value in enumerate(values):
                try:
                    checked.append(check(value))
                except _Refused as refused:
                    problems.append(f"[{i}].{name}: {refused}, got {_shown(value)}")
                    if len(problems) >= MAX_PROBLEMS:
                        break
            out[name] = checked
        if problems:
            self._fail(problems)
        return out

    def table(self, data: pa.Table | pa.RecordBatch, first_row: int = 0) -> pa.Table:
        """Rows as Arrow columns (batch, stream), by the same rules, numbered from ``first_row``;
        columns the signature does not name are left out, not refused (an input file's id)."""
        from valueloop.deploy.table_rules import check_table

        return check_table(self.columns, data, first_row)

    def table_of(self, columns: Mapping[str, Sequence[Any]]) -> pa.Table:
        """Columns that :meth:`records` checked, as an Arrow table of the types it gave them."""
        import pyarrow as pa

        types = {"double": pa.float64(), "float": pa.float64(), "long": pa.int64(), "integer": pa.int64(),
                 "boolean": pa.bool_()}
        return pa.table({c.name: pa.array(columns[c.name], types.get(c.type, pa.string())) for c in self.columns})

    @property
    def csv_types(self) -> dict[str, str]:
        """How a CSV's cells are read (a file has no types): a postcode of digits stays the text
        the model was trained on, a number with no fraction in some rows stays a number."""
        wanted = {"double": "float64", "float": "float64", "string": "string", "boolean": "bool"}
        return {c.name: wanted[c.type] for c in self.columns if c.type in wanted}

    def read_json(self, documents: list[bytes]) -> pa.Table | None:
        """JSON objects of fields as a table, parsed in one pass of Arrow's C++ reader (the
        stream's fast path), or None unless every document is one object (it starts with ``{``
        and ends with ``}``, so no two can merge into one row) of known fields whose values Arrow
        reads as their type: the caller then checks each document with :meth:`records`."""
        import io

        import pyarrow as pa
        import pyarrow.json as pj

        if not documents or not all(d[:1] == b"{" and d[-1:] == b"}" for d in documents):
            return None
        types = {"double": pa.float64(), "float": pa.float64(), "long": pa.int64(), "integer": pa.int64(),
                 "boolean": pa.bool_()}
        schema = pa.schema([(c.name, types.get(c.type, pa.string())) for c in self.columns])
        try:
            table = pj.read_json(io.BytesIO(b"\n".join(documents)), read_options=pj.ReadOptions(use_threads=False),
                                 parse_options=pj.ParseOptions(explicit_schema=schema,
                                                               unexpected_field_behavior="error"))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        return table if table.num_rows == len(documents) else None

    def rows_of(self, rows: Sequence[Any], names: Sequence[str] | None = None) -> dict[str, list[Any]]:
        """Rows as lists of values in the order of ``names`` (default: the signature's)."""
        names = list(names or self.names)
        problems = []
        for i, row in enumerate(rows):
            if not isinstance(row, list | tuple) or len(row) != len(names):
                problems.append(f"[{i}]: expected a list of {len(names)} values ({', '.join(names)}), "
                                f"got {_shown(row)}")
                if len(problems) >= MAX_PROBLEMS:
                    break
        if problems:
            self._fail(problems)
        return self.columns_of({n: [row[j] for row in rows] for j, n in enumerate(names)})


_MISSING = object()


def _encoder_categories(estimator: Any) -> dict[str, frozenset[str]]:
    """Categories the fitted one-hot or ordinal encoders of a scikit-learn model know per column.

    A column whose encoder pools rare categories (``infrequent_categories_``) takes unknown ones
    into the pool by design, so it gets no category rule.
    """
    found: dict[str, frozenset[str]] = {}
    stack: list[tuple[Any, Any]] = [(estimator, None)]
    while stack:
        node, cols = stack.pop()
        if hasattr(node, "steps"):  # a Pipeline: its steps see the same columns
            stack += [(step, cols) for _, step in node.steps]
        inner = getattr(node, "estimator_", None) or getattr(node, "estimator", None)
        if inner is not None and not isinstance(inner, type):  # a meta-estimator (a decision threshold)
            stack.append((inner, cols))
        for _, part, part_cols in getattr(node, "transformers_", []):  # a ColumnTransformer
            if not isinstance(part, str):
                stack.append((part, part_cols))
        if hasattr(node, "categories_") and isinstance(cols, list | tuple):
            pooled = getattr(node, "infrequent_categories_", None) or [None] * len(node.categories_)
            for col, cats, rare in zip(cols, node.categories_, pooled, strict=False):
                if isinstance(col, str) and rare is None and all(isinstance(c, str) for c in cats):
                    found[col] = frozenset(cats)
    return found


def compile_validator(signature_inputs: Iterable[Mapping[str, Any]], estimator: Any = None) -> Validator:
    """A validator from the signature's column specs (``signature.inputs.to_dict()``)."""
    categories = _encoder_categories(estimator) if estimator is not None else {}
    columns = []
    for spec in signature_inputs:
        if "name" not in spec or "type" not in spec or spec["type"] == "tensor":
            raise InvalidInput("the model's signature must name its input columns; tensor or "
                               "unnamed inputs cannot be validated")
        columns.append(Column(name=spec["name"], type=spec["type"], required=spec.get("required", True),
                              categories=categories.get(spec["name"]) if spec["type"] == "string" else None))
    return Validator(columns)

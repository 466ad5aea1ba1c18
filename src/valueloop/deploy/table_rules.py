"""The signature's coercion rules (deploy/schema.py) over Arrow columns, for batch and stream.

Each rule is a mask over a whole column computed by Arrow's kernels; only the rows a mask marks
(at most the 20 reported) are looked at one by one, to show their values. A table that passes
comes out as the signature's columns with the types a JSON request's values would have: numbers
as float64 (a null in an optional one as NaN), integers as int64, strings as strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

    from valueloop.deploy.schema import Column

#: problems reported at most, as for a request
MAX_PROBLEMS = 20
_BITS = {"long": 64, "integer": 32}


def _shown(value: Any) -> str:
    return repr(value)[:60]


def arrow_kind(dtype: pa.DataType) -> str:
    """What an Arrow type holds, in the words of the rules: boolean, integer, float, string, datetime."""
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(dtype):
        return arrow_kind(dtype.value_type)
    if t.is_boolean(dtype):
        return "boolean"
    if t.is_integer(dtype):
        return "integer"
    if t.is_floating(dtype) or t.is_decimal(dtype):
        return "float"
    if t.is_string(dtype) or t.is_large_string(dtype):
        return "string"
    if t.is_date(dtype) or t.is_timestamp(dtype):
        return "datetime"
    return "null" if t.is_null(dtype) else "other"


Rules = list[tuple["pa.Array", str]]  # (mask of the rows that break the rule, the rule)


def _nulls(column: Column, values: pa.Array, rules: Rules) -> None:
    import pyarrow.compute as pc

    if column.required and values.null_count:
        rules.append((pc.is_null(values), "required, must not be null"))


def _wrong(values: pa.Array, rule: str, rules: Rules) -> None:
    import pyarrow.compute as pc

    rules.append((pc.is_valid(values), rule))


def _number(column: Column, values: pa.Array, kind: str, rules: Rules) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind not in ("integer", "float", "null"):
        _wrong(values, "expected a number", rules)
        return values
    floats = values.cast(pa.float64())
    if kind == "float" and not pc.all(pc.is_finite(floats)).as_py():  # one pass when every value is fine
        if column.required:
            rules.append((pc.fill_null(pc.is_nan(floats), False), "NaN is not allowed in a required column"))
        rules.append((pc.fill_null(pc.is_inf(floats), False), "must be a finite number"))
    return pc.fill_null(floats, float("nan")) if floats.null_count else floats


def _integer(column: Column, values: pa.Array, kind: str, rules: Rules) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind not in ("integer", "float", "null"):
        _wrong(values, "expected an integer", rules)
        return values
    bits = _BITS[column.type]
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if kind == "float":
        floats = values.cast(pa.float64())
        whole = pc.and_(pc.is_finite(floats), pc.equal(pc.floor(floats), floats))
        rules.append((pc.fill_null(pc.invert(whole), False), "expected an integer"))
        outside = pc.or_(pc.less(floats, float(low)), pc.greater_equal(floats, float(high) + 1))
        rules.append((pc.fill_null(pc.and_(whole, outside), False), f"must be a {bits}-bit integer"))
        return pc.if_else(pc.fill_null(pc.and_(whole, pc.invert(outside)), False), floats, None).cast(pa.int64())
    if kind == "null" or pa.types.is_int64(values.type) and bits == 64:
        return values.cast(pa.int64())
    if pa.types.is_uint64(values.type):
        outside = pc.greater(values, pa.scalar(high, pa.uint64()))
    else:
        wide = values.cast(pa.int64())
        outside = pc.or_(pc.less(wide, low), pc.greater(wide, high))
    outside = pc.fill_null(outside, False)
    rules.append((outside, f"must be a {bits}-bit integer"))
    return pc.if_else(outside, pa.scalar(None, values.type), values).cast(pa.int64())


def _boolean(values: pa.Array, kind: str, rules: Rules) -> pa.Array:
    if kind not in ("boolean", "null"):
        _wrong(values, "expected true or false", rules)
    return values


def _string(column: Column, values: pa.Array, kind: str, rules: Rules) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind not in ("string", "null"):
        _wrong(values, "expected a string", rules)
        return values
    text = values.cast(pa.string())
    if column.categories is not None:
        known = pc.is_in(text, value_set=pa.array(sorted(column.categories), pa.string()))
        rules.append((pc.and_(pc.is_valid(text), pc.invert(known)),
                      f"unknown category; known: {', '.join(sorted(column.categories))}"))
    return text


def _datetime(values: pa.Array, kind: str, rules: Rules) -> pa.Array:
    import pyarrow as pa

    if kind == "datetime":
        return values.cast(pa.string())
    if kind not in ("string", "null"):
        _wrong(values, "expected an ISO 8601 string", rules)
        return values
    text = values.cast(pa.string())
    try:
        text.cast(pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # rare: find the values at fault
        from datetime import datetime

        def bad(v: str | None) -> bool:
            try:
                return v is not None and datetime.fromisoformat(v) is None
            except ValueError:
                return True

        rules.append((pa.array([bad(v) for v in text.to_pylist()]), "expected an ISO 8601 date or date-time"))
    return text


def _typed(column: Column, n: int) -> pa.Array:
    """A missing optional column as a request would give it: NaN numbers, else nulls."""
    import pyarrow as pa

    if column.type in ("double", "float"):
        return pa.array([float("nan")] * n, pa.float64())
    arrow = {"long": pa.int64(), "integer": pa.int64(), "boolean": pa.bool_()}.get(column.type, pa.string())
    return pa.nulls(n, arrow)


#: the kinds of Arrow column each signature type takes (values are then checked one rule at a time)
_TAKES = {"double": ("integer", "float"), "float": ("integer", "float"), "long": ("integer", "float"),
          "integer": ("integer", "float"), "boolean": ("boolean",), "string": ("string",),
          "datetime": ("datetime", "string")}
_WANTS = {"double": "a number", "float": "a number", "long": "an integer", "integer": "an integer",
          "boolean": "true or false", "string": "a string", "datetime": "an ISO 8601 date or date-time"}


def check_schema(columns: list[Column], schema: pa.Schema, origin: str, what: str) -> None:
    """Refuse, before any row is read, input whose columns cannot hold the signature's fields."""
    problems = []
    for column in columns:
        if column.name not in schema.names:
            if column.required:
                problems.append(f"column '{column.name}': missing; the model needs {_WANTS[column.type]}")
            continue
        dtype = schema.field(column.name).type
        if arrow_kind(dtype) not in (*_TAKES[column.type], "null"):
            problems.append(f"column '{column.name}': {dtype} is not {_WANTS[column.type]} as the "
                            "model's signature requires")
    if problems:
        raise InvalidInput(f"{origin} does not match the signature of {what}:", problems=problems)


def check_table(columns: list[Column], data: pa.Table | pa.RecordBatch, first_row: int = 0) -> pa.Table:
    """The signature's columns of ``data``, checked and coerced; InvalidInput naming each row,
    field, rule and value that breaks a rule (rows numbered from ``first_row``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = data.num_rows
    out: dict[str, pa.Array] = {}
    problems: list[tuple[int, int, str]] = []
    missing: list[str] = []
    for j, column in enumerate(columns):
        if column.name not in data.schema.names:
            if column.required:
                missing.append(f"{column.name}: required field is missing")
            else:
                out[column.name] = _typed(column, n)
            continue
        values = data.column(column.name)
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        kind, rules = arrow_kind(values.type), []
        _nulls(column, values, rules)
        if column.type in ("double", "float"):
            out[column.name] = _number(column, values, kind, rules)
        elif column.type in _BITS:
            out[column.name] = _integer(column, values, kind, rules)
        elif column.type == "boolean":
            out[column.name] = _boolean(values, kind, rules)
        elif column.type == "string":
            out[column.name] = _string(column, values, kind, rules)
        else:
            out[column.name] = _datetime(values, kind, rules)
        for mask, rule in rules:
            rows = pc.indices_nonzero(mask).slice(0, MAX_PROBLEMS).to_pylist()
            problems += [(i, j, f"[{first_row + i}].{column.name}: {rule}, got {_shown(values[i].as_py())}")
                         for i in rows]
    if missing or problems:
        listed = missing + [text for _, _, text in sorted(problems)]
        raise InvalidInput(f"input is invalid ({len(listed)} problem(s))", problems=listed[:MAX_PROBLEMS])
    return pa.table(out)

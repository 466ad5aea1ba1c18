"""The profile of a dataset version, in two DuckDB scans that hold no more than sketches.

The first scan takes every column's counts, range, moments, quantiles (of a reservoir sample),
approximate distinct count and top values; the second bins the numbers between the first scan's bounds and counts
the top values exactly. The Operate phase compares new data against the stored histograms, so
they keep their bin edges: ``counts[i]`` holds values in ``[edges[i], edges[i+1])``, the last bin
also its right edge, as ``numpy.histogram`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from valueloop.data.plain import plain
from valueloop.data.treatments import quote

if TYPE_CHECKING:
    import duckdb

BINS = 20
TOP_VALUES = 10
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: rows in the reservoir the quantiles are taken from (T-digest costs four times as much)
QUANTILE_SAMPLE = 20_000
#: a text column with more distinct values than this share of its rows has no top values
IDENTIFIER_SHARE = 0.5

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")
_TEMPORAL = ("DATE", "TIMESTAMP", "TIME")
_CATEGORICAL = ("VARCHAR", "BOOLEAN", "ENUM")


def kind_of(duck_type: str) -> str:
    for kind, prefixes in (("numeric", _NUMERIC), ("temporal", _TEMPORAL), ("categorical", _CATEGORICAL)):
        if duck_type.startswith(prefixes):
            return kind
    return "other"


def _first_scan(column: str, kind: str) -> list[tuple[str, str]]:
    ref = quote(column)
    items = [("count", f"count({ref})"), ("distinct", f"approx_count_distinct({ref})")]
    if kind in ("numeric", "temporal"):
        items += [("min", f"min({ref})"), ("max", f"max({ref})")]
    if kind == "numeric":
        as_double = f"CAST({ref} AS DOUBLE)"
        items += [("mean", f"avg({as_double})"), ("std", f"stddev_samp({as_double})"),
                  ("quantiles", f"reservoir_quantile({as_double}, {list(QUANTILES)}, {QUANTILE_SAMPLE})")]
    if kind == "categorical":
        items.append(("top", f"approx_top_k({ref}, {TOP_VALUES})"))
    return items


def _edges(low: float, high: float) -> list[float]:
    if low == high:
        return [low, high]
    width = (high - low) / BINS
    return [low + i * width for i in range(BINS)] + [high]


def _second_scan(column: str, stats: dict[str, Any]) -> str | None:
    ref = quote(column)
    if "mean" in stats and stats["min"] is not None:
        edges = stats["histogram"]["edges"]
        low, bins = edges[0], len(edges) - 1
        width = (edges[-1] - low) / bins or 1.0
        return f"histogram(least(CAST(floor((CAST({ref} AS DOUBLE) - {low!r}) / {width!r}) AS INTEGER), {bins - 1}))"
    if stats.get("top"):
        values = ", ".join("'" + str(v).replace("'", "''") + "'" for v in stats["top"])
        return f"histogram(CAST({ref} AS VARCHAR)) FILTER (WHERE CAST({ref} AS VARCHAR) IN ({values}))"
    return None


def profile(con: duckdb.DuckDBPyConnection, table: str = "dataset") -> dict[str, Any]:
    """Per column: nulls, distinct, min/max/mean/std, quantiles, histogram or top values."""
    described = [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()]
    plan = {name: (duck_type, _first_scan(name, kind_of(duck_type))) for name, duck_type in described}
    selects = ["count(*)"] + [expr for _, items in plan.values() for _, expr in items]
    total, *values = con.execute(f"SELECT {', '.join(selects)} FROM {table}").fetchone()
    found = iter(values)

    columns: dict[str, dict[str, Any]] = {}
    for name, (duck_type, items) in plan.items():
        stats: dict[str, Any] = {key: next(found) for key, _ in items}
        stats["distinct"] = min(stats["distinct"], stats["count"])  # the sketch may overshoot
        if stats["distinct"] > stats["count"] * IDENTIFIER_SHARE:
            stats.pop("top", None)  # nearly every value is unique: an identifier, no top values
        stats = {"type": duck_type, "kind": kind_of(duck_type), "nulls": total - stats["count"],
                 "null_fraction": (total - stats["count"]) / total if total else 0.0, **stats}
        if "quantiles" in stats:
            stats["quantiles"] = dict(zip((f"p{round(q * 100):02d}" for q in QUANTILES),
                                          stats["quantiles"] or [None] * len(QUANTILES), strict=True))
            if stats["min"] is not None:
                stats["histogram"] = {"edges": _edges(float(stats["min"]), float(stats["max"]))}
        columns[name] = stats

    second = {name: expr for name, stats in columns.items() if (expr := _second_scan(name, stats))}
    if second:
        counts = con.execute(f"SELECT {', '.join(second.values())} FROM {table}").fetchone()
        for name, found_counts in zip(second, counts, strict=True):
            stats, found_counts = columns[name], found_counts or {}
            if "histogram" in stats:
                bins = len(stats["histogram"]["edges"]) - 1
                stats["histogram"]["counts"] = [int(found_counts.get(i, 0)) for i in range(bins)]
            else:
                top = sorted(found_counts.items(), key=lambda kv: (-kv[1], kv[0]))
                stats["top_values"] = [{"value": v, "count": int(c)} for v, c in top]
                stats["other_count"] = stats["count"] - sum(c for _, c in top)
    for stats in columns.values():
        stats.pop("top", None)
    return plain({"rows": total, "columns": columns})

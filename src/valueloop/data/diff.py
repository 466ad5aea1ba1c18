"""What changed between two dataset versions: schema, row count and per-column statistics."""

from __future__ import annotations

from typing import Any

from valueloop.data.service import DatasetVersionView

#: the profile statistics a diff compares, per column
STATS = ("nulls", "null_fraction", "distinct", "min", "max", "mean", "std")
#: two estimates of one distinct count differ by up to this share: DuckDB's HyperLogLog has a
#: standard error of about 3.5%, so 15% is three standard errors of a difference
DISTINCT_NOISE = 0.15


def _approximate(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Either side's distinct count is an estimate (profiles before the flag: all were)."""
    return bool(a.get("distinct_approximate", True) or b.get("distinct_approximate", True))


def _changed(stat: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    before, after = a.get(stat), b.get(stat)
    if before == after:
        return None
    if stat == "distinct" and _approximate(a, b):
        if isinstance(before, int) and isinstance(after, int) and \
                abs(after - before) <= DISTINCT_NOISE * max(before, after):
            return None  # within the estimate's noise: not a change
        return {"from": before, "to": after, "approximate": True}
    return {"from": before, "to": after}


def diff(old: DatasetVersionView, new: DatasetVersionView) -> dict[str, Any]:
    before = {c.name: c.type for c in old.columns}
    after = {c.name: c.type for c in new.columns}
    schema = (
        [{"column": c, "change": "added", "type": after[c]} for c in after if c not in before]
        + [{"column": c, "change": "removed", "type": before[c]} for c in before if c not in after]
        + [{"column": c, "change": "type", "from": before[c], "to": after[c]}
           for c in after if c in before and before[c] != after[c]]
    )
    columns = {}
    for name in (c for c in after if c in before):
        a = old.profile.get("columns", {}).get(name, {})
        b = new.profile.get("columns", {}).get(name, {})
        changed = {s: change for s in STATS if (change := _changed(s, a, b)) is not None}
        if changed:
            columns[name] = changed
    return {
        "usecase": new.usecase, "from": old.version, "to": new.version, "schema": schema,
        "rows": {"from": old.row_count, "to": new.row_count, "change": new.row_count - old.row_count},
        "columns": columns,
    }

"""What changed between two dataset versions: schema, row count and per-column statistics."""

from __future__ import annotations

from typing import Any

from valueloop.data.service import DatasetVersionView

#: the profile statistics a diff compares, per column
STATS = ("nulls", "null_fraction", "distinct", "min", "max", "mean", "std")


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
        changed = {s: {"from": a.get(s), "to": b.get(s)} for s in STATS
                   if s in a or s in b if a.get(s) != b.get(s)}
        if changed:
            columns[name] = changed
    return {
        "usecase": new.usecase, "from": old.version, "to": new.version, "schema": schema,
        "rows": {"from": old.row_count, "to": new.row_count, "change": new.row_count - old.row_count},
        "columns": columns,
    }

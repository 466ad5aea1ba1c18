"""What serving needs to turn a raw record into the features a model was trained on, recorded
with every dataset version: the sources' raw schemas, and the transform when it is row-level.

A row-level transform maps each row of its one source to at most one row (a projection and a
filter: no join, aggregate, window, subquery, DISTINCT or LIMIT), so it can run on the records of
one request exactly as it ran on the whole source. DuckDB's own parser says which it is
(``json_serialize_sql``), and the query is recorded with a row number column added, so that a
scored record finds its answer, and a record the filter drops is named. Any other transform
cannot run per request: its use case declares which features are computed upstream.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: the row number a treated record carries through the transform
ROW = "__valueloop_row"
#: the key of a model version's MLflow metadata that holds its pipeline (learn/serving.py)
METADATA_KEY = "valueloop_pipeline"
_BLOCKING = {"DISTINCT_MODIFIER": "it keeps distinct rows (DISTINCT)", "LIMIT_MODIFIER": "it limits rows (LIMIT)",
             "LIMIT_PERCENT_MODIFIER": "it limits rows (LIMIT)"}


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _why_not(node: dict[str, Any], sources: list[str], aggregates: set[str]) -> str | None:
    """Why a parsed SELECT is not row-level, or None when it is."""
    if node.get("type") != "SELECT_NODE":
        return "it combines queries (UNION, INTERSECT or EXCEPT)"
    if node["cte_map"]["map"]:
        return "it has a WITH clause"
    table = node["from_table"]
    if table.get("type") != "BASE_TABLE" or table.get("table_name") not in sources:
        return "it reads more than one source's rows (a join or a subquery)"
    for modifier in node["modifiers"]:
        if modifier["type"] in _BLOCKING:
            return _BLOCKING[modifier["type"]]
    if node["group_expressions"] or node["group_sets"] or node["having"] is not None:
        return "it aggregates rows (GROUP BY)"
    if node["qualify"] is not None or node["sample"] is not None:
        return "it filters on windows (QUALIFY) or samples rows"
    for expression in _nodes([node["select_list"], node["where_clause"]]):
        if expression.get("class") == "WINDOW":
            return "it uses a window function"
        if expression.get("class") == "SUBQUERY":
            return "it has a subquery"
        if expression.get("class") == "FUNCTION" and expression.get("function_name") in aggregates:
            return f"it aggregates rows ({expression['function_name']})"
    return None


def row_level(query: str, sources: list[str]) -> dict[str, str | None]:
    """``query`` (with :data:`ROW` carried through) and the ``source`` it reads, for a row-level
    transform; else ``not_row_level``: why it is not."""
    import duckdb

    with duckdb.connect() as con:
        tree = json.loads(con.execute("SELECT json_serialize_sql($1)", [query]).fetchone()[0])
        if tree.get("error"):
            return {"not_row_level": f"DuckDB cannot read it for its rows ({tree.get('error_message')})"}
        aggregates = {r[0] for r in con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type = 'aggregate'").fetchall()}
        node = tree["statements"][0]["node"]
        if (why := _why_not(node, sources, aggregates)) is not None:
            return {"not_row_level": why}
        if not any(e.get("class") == "STAR" for e in node["select_list"]):
            node["select_list"].append({"class": "COLUMN_REF", "type": "COLUMN_REF", "alias": "",
                                        "query_location": 0, "column_names": [ROW]})
        return {"query": con.execute("SELECT json_deserialize_sql($1)", [json.dumps(tree)]).fetchone()[0],
                "source": node["from_table"]["table_name"]}


def schema_text(schema: pa.Schema) -> str:
    """A raw schema as text a JSON column holds, exactly (Arrow's own serialization)."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def schema_of(text: str) -> pa.Schema:
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def record(schemas: dict[str, pa.Schema], transform: dict[str, str | None]) -> dict[str, Any]:
    """The serving record of a dataset version: each source's raw columns (readable, and exactly)
    and what :func:`row_level` said of the transform."""
    return {"sources": {name: {"columns": {f.name: str(f.type) for f in schema}, "schema": schema_text(schema)}
                        for name, schema in schemas.items()},
            "query": None, "source": None, "not_row_level": None} | transform

"""The profile's statistics against DuckDB's exact aggregates, on a table made here."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from valueloop.data.plain import scan
from valueloop.data.profile import FEW_VALUES, TOP_VALUES, Profiler


def _profile(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    profiler = Profiler(con, "t")
    return profiler.finish(scan(con, "t", profiler.aggregates)[0])


def test_top_values_exact_for_few_and_many_values_none_for_identifiers_nulls_in_no_bin() -> None:
    rows = 4 * FEW_VALUES
    con = duckdb.connect()
    con.execute(f"""CREATE TABLE t AS SELECT
        'id' || i AS ident,
        ['a', 'b', 'b', 'c'][i % 4 + 1] AS few,
        CASE WHEN i % 10 = 0 THEN 'common' ELSE 'v' || (i % ({rows} // 3)) END AS many,
        CASE WHEN i % 5 = 0 THEN NULL ELSE i % 3 END AS number
        FROM range({rows}) r(i)""")
    columns = _profile(con)["columns"]

    assert "top_values" not in columns["ident"]
    assert columns["few"]["top_values"] == [{"value": "b", "count": rows // 2}, {"value": "a", "count": rows // 4},
                                            {"value": "c", "count": rows // 4}]
    assert columns["few"]["other_count"] == 0
    many = columns["many"]
    assert many["distinct"] > FEW_VALUES  # ranked in a query of its own
    assert len(many["top_values"]) == TOP_VALUES and many["top_values"][0] == {"value": "common", "count": rows // 10}
    assert many["other_count"] == rows - sum(t["count"] for t in many["top_values"])

    number = columns["number"]
    mean, std = con.execute("SELECT avg(number), stddev_samp(number) FROM t").fetchone()
    assert number["nulls"] == rows // 5 and number["mean"] == pytest.approx(mean) and number["std"] == pytest.approx(std)
    assert sum(number["histogram"]["counts"]) == rows - rows // 5


def test_a_distinct_count_is_exact_where_every_value_is_counted_and_marked_approximate_elsewhere() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 'v' || (i % 9000) AS cat, i AS num, 'id' || i AS ident "
                "FROM range(20000) r(i)")
    columns = _profile(con)["columns"]
    assert (columns["cat"]["distinct"], columns["cat"]["distinct_approximate"]) == (9000, False)
    assert columns["num"]["distinct_approximate"] and columns["ident"]["distinct_approximate"]


def _version(number: int, ids: str, rows: int) -> Any:
    from valueloop.data.service import ColumnView, DatasetVersionView

    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT {ids} AS customer_id, i % 7 AS calls FROM range({rows}) r(i)")
    return DatasetVersionView.model_construct(
        usecase="churn", version=number, row_count=rows, profile=_profile(con),
        columns=[ColumnView(name="customer_id", type="VARCHAR"), ColumnView(name="calls", type="BIGINT")])


def test_diff_does_not_report_the_noise_of_an_approximate_distinct_count_as_a_change() -> None:
    from valueloop.data.diff import diff

    first = _version(0, "'a' || i", 20_000)
    renamed = _version(1, "'b' || i", 20_000)  # other customers, as many of them
    assert first.profile["columns"]["customer_id"]["distinct"] != renamed.profile["columns"]["customer_id"]["distinct"]
    assert diff(first, renamed)["columns"] == {}
    doubled = diff(first, _version(2, "'c' || i", 40_000))["columns"]["customer_id"]["distinct"]
    assert doubled["approximate"] is True and doubled["to"] > 1.5 * doubled["from"]


def test_histograms_count_as_numpy_does_edges_included_nulls_in_no_bin() -> None:
    """Values on bin edges, the maximum in the last bin, nulls in none; a constant column in one
    bin; a column of nulls without a histogram."""
    import numpy as np

    con = duckdb.connect()
    con.execute("""CREATE TABLE t AS SELECT
        CASE WHEN i % 7 = 0 THEN NULL ELSE (i * 37) % 101 END AS edges,
        (i % 1000) / 10.0 - 50 AS spread,
        3 AS constant,
        CAST(NULL AS DOUBLE) AS empty
        FROM range(5000) r(i)""")
    columns = _profile(con)["columns"]
    for name in ("edges", "spread"):
        values = np.array([v for (v,) in con.execute(f"SELECT {name} FROM t WHERE {name} IS NOT NULL").fetchall()], float)
        histogram = columns[name]["histogram"]
        assert histogram["counts"] == np.histogram(values, bins=np.array(histogram["edges"]))[0].tolist()
        assert columns[name]["quantiles"]["p50"] == pytest.approx(np.quantile(values, 0.5), abs=(values.max() - values.min()) / 100)
    assert columns["constant"]["histogram"] == {"edges": [3.0, 3.0], "counts": [5000]}
    assert "histogram" not in columns["empty"]

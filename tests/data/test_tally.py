"""The checks' and the profile's aggregates taken while the staged file is written: the same
values a scan of the file gives, over data with nulls and edge values across several batches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import TypeAdapter

from valueloop.config import load_settings
from valueloop.data import pipeline, profile, quality
from valueloop.data.plain import scan
from valueloop.data.sandbox import connect
from valueloop.outcomes.spec import Check, CsvSource, DataSection

#: more rows than the transform hands out in one batch, so the tally spans several
ROWS = 3 * pipeline.ROW_GROUP_ROWS // 2

CHECKS = TypeAdapter(list[Check]).validate_python([
    {"check": "unique", "columns": ["id"]},
    {"check": "not_null", "column": "label"},
    {"check": "range", "column": "amount", "min": -1, "max": 1e300},
    {"check": "allowed_values", "column": "label", "values": ["a", "b", ""]},
    {"check": "pattern", "column": "label", "pattern": "[ab]"},
    {"check": "freshness", "column": "seen", "max_age": "3650d"},
    {"check": "row_count", "min": 1},
])


def _table() -> pa.Table:
    """Nulls in every column, extreme integers, NaN, infinities, signed zeros, empty strings."""
    rng = np.random.default_rng(3)
    n = np.arange(ROWS)
    amount = rng.normal(0, 1e6, ROWS)
    amount[::7] = np.nan
    amount[1::11] = np.inf
    amount[2::13] = -0.0
    amount[3] = 1.7e308
    ids = n.astype(np.int64)
    ids[5], ids[6] = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    label = np.array(["a", "b", "", "c,d"], dtype=object)[n % 4]
    null = n % 17 == 0
    return pa.table({
        "id": pa.array(ids, mask=n % 97 == 1),
        "amount": pa.array(amount, mask=null),
        "count": pa.array(n % 5 - 2, mask=n % 19 == 0),
        "label": pa.array(label, mask=n % 23 == 0),
        "seen": pa.array((n % 3650).astype("datetime64[D]"), mask=null),
        "flag": pa.array(n % 3 == 0, mask=n % 29 == 0),
    })


def _stage(tmp_path: Path) -> pipeline.Staged:
    """The table staged from a CSV file, with the checks' and the profile's aggregates tallied
    (no metadata database: nothing is recorded)."""
    import pyarrow.csv as pacsv

    settings = load_settings({"VALUELOOP_HOME": str(tmp_path / "home")})

    project, work = tmp_path / "project", tmp_path / "work"
    project.mkdir()
    work.mkdir()
    pacsv.write_csv(_table(), project / "t.csv")
    return pipeline.stage(settings, [CsvSource(name="rows", kind="csv", path="t.csv")], DataSection(), project,
                          {}, [], work,
                          aggregates=lambda types: quality.aggregates(CHECKS, types) + profile.aggregates(types))


def test_the_tally_equals_a_scan_of_the_staged_file(tmp_path: Path) -> None:
    staged = _stage(tmp_path)
    assert staged.rows == ROWS and pq.ParquetFile(staged.files[0]).metadata.num_row_groups > 1
    with connect(tmp_path) as con:
        pipeline.register_dataset(con, staged.files)
        types = {name: kind for name, kind, *_ in con.execute("DESCRIBE dataset").fetchall()}
        wanted = quality.aggregates(CHECKS, types) + profile.aggregates(types)
        scanned = scan(con, "dataset", wanted)[0]
    assert staged.tally is not None
    tallied = staged.tally.of(types, wanted)
    assert tallied is not None and len(tallied) == len(wanted) > 20
    for expression, got, expected in zip(wanted, tallied, scanned, strict=True):
        if isinstance(expected, float) and not math.isnan(expected):  # sums in another order
            assert got == pytest.approx(expected, rel=1e-12), expression
        elif isinstance(expected, float):
            assert math.isnan(got), expression
        else:
            assert got == expected, expression


def test_a_tally_on_other_types_or_without_an_aggregate_is_not_used() -> None:
    tally = pipeline.Tally({"n": "BIGINT"}, {"count(*)": 3, 'count("n")': 2})
    assert tally.of({"n": "BIGINT"}, ['count("n")', "count(*)"]) == [2, 3]
    assert tally.of({"n": "DOUBLE"}, ["count(*)"]) is None
    assert tally.of({"n": "BIGINT"}, ['max("n")']) is None

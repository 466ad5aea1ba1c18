"""A source staged without a transform is written from its treated stream as it is, without the
sandbox's ``SELECT *`` pass: the same file as through the sandbox, types and rows, or else the
sandbox is used."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from valueloop.config import load_settings
from valueloop.data import pipeline
from valueloop.outcomes.spec import CsvSource, DataSection, ParquetSource

ROWS = 5_000


def _table() -> pa.Table:
    """Types a CSV or Parquet source may hold, with nulls."""
    n = list(range(ROWS))
    null = [i % 7 == 0 for i in n]

    def arr(values: list, kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind, mask=pa.array(null))

    return pa.table({
        "i": arr(n, pa.int64()), "u8": arr([i % 250 for i in n], pa.uint8()),
        "f": arr([i / 3 for i in n], pa.float64()), "f32": arr([i / 7 for i in n], pa.float32()),
        "s": arr([f"v{i % 13}" for i in n], pa.string()),
        "ls": arr([f"w{i}" for i in n], pa.large_string()),
        "cat": arr([f"c{i % 3}" for i in n], pa.string()).dictionary_encode(),
        "d": arr([date(2020, 1, 1 + i % 28) for i in n], pa.date32()),
        "ts": arr([datetime(2021, 5, 1, i % 24) for i in n], pa.timestamp("s")),
        "tz": arr([datetime(2021, 5, 1, i % 24, tzinfo=UTC) for i in n], pa.timestamp("us", "UTC")),
        "t": arr([time(i % 24) for i in n], pa.time64("us")),
        "dec": arr([Decimal(i) / 100 for i in n], pa.decimal128(12, 2)),
        "b": arr([i % 2 == 0 for i in n], pa.bool_()),
        "bin": arr([bytes([i % 256]) for i in n], pa.binary()),
        "nothing": pa.nulls(ROWS),
    })


def _staged(tmp_path: Path, source: CsvSource | ParquetSource, section: DataSection, name: str) -> pa.Table:
    work = tmp_path / name
    work.mkdir()
    settings = load_settings({"VALUELOOP_HOME": str(tmp_path / "home")})
    staged = pipeline.stage(settings, [source], section, tmp_path, {}, [], work)
    return pq.read_table(staged.files[0])


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_source_without_a_transform_is_staged_as_the_sandbox_would(tmp_path: Path, kind: str) -> None:
    table = _table()
    if kind == "csv":
        import pyarrow.csv as pacsv

        table = table.drop_columns(["u8", "ls", "cat", "tz", "t", "dec", "bin"])  # what a CSV cannot hold
        pacsv.write_csv(table, tmp_path / "rows.csv")
        source = CsvSource(name="rows", kind="csv", path="rows.csv")
    else:
        pq.write_table(table, tmp_path / "rows.parquet")
        source = ParquetSource(name="rows", kind="parquet", path="rows.parquet")
    (tmp_path / "all.sql").write_text('SELECT * FROM "rows"\n')
    as_is = _staged(tmp_path, source, DataSection(), "as-is")
    sandboxed = _staged(tmp_path, source, DataSection(transform="all.sql"), "sandboxed")
    assert as_is.schema.equals(sandboxed.schema, check_metadata=True)
    assert as_is.equals(sandboxed) and as_is.num_rows == ROWS

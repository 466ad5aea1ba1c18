"""The prediction log: durable typed Parquet parts per day, labels by request id, the async logger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from valueloop.config import Settings
from valueloop.deploy.metrics import LOG_DROPPED
from valueloop.deploy.labels import current, record_feedback
from valueloop.deploy.predlog import AsyncPredictionLogger, PredictionLog
from valueloop.errors import InvalidInput, PermissionDenied


def _record(i: int, ts: datetime | None = None) -> dict:
    rec = {"request_id": f"r{i}", "model_version": "1", "latency_seconds": 0.001, "prediction": i % 2,
           "probability": 0.25, "tenure_months": i, "contract": "monthly"}
    if ts is not None:
        rec["ts"] = ts
    return rec


def test_append_and_read_keep_types_days_and_order(settings: Settings) -> None:
    plog = PredictionLog(settings, "churn")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    assert plog.append([_record(1, yesterday), _record(2)], source="rest") == 2
    plog.append(pa.table({"request_id": ["b1"], "model_version": ["2"], "prediction": [1],
                          "tenure_months": [3.5]}), source="batch")
    root = Path(plog.root.path)
    days = sorted(p.name for p in root.glob("date=*"))
    assert days == [f"date={yesterday:%Y-%m-%d}", f"date={datetime.now(UTC):%Y-%m-%d}"]
    assert not list(root.rglob(".*.tmp"))
    table = plog.read()
    assert table["request_id"].to_pylist() == ["r1", "r2", "b1"]
    assert table["source"].to_pylist() == ["rest", "rest", "batch"]
    assert table.schema.field("tenure_months").type == pa.float64()  # int and float files unified
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table["probability"].to_pylist() == [0.25, 0.25, None]
    assert plog.read(since=datetime.now(UTC) - timedelta(hours=1))["request_id"].to_pylist() == ["r2", "b1"]
    assert plog.read(until=datetime.now(UTC) - timedelta(hours=1))["request_id"].to_pylist() == ["r1"]


def test_log_files_keep_dictionaries_for_repeated_text_only(settings: Settings) -> None:
    """A dictionary over unique ids or measured numbers is built and thrown away on every write,
    three quarters of a batch's log cost (issue 19); repeated text keeps its dictionary."""
    import pyarrow.parquet as pq

    plog = PredictionLog(settings, "churn")
    plog.append([_record(i) | {"monthly_charges": i * 1.37} for i in range(200)], source="batch")
    (part,) = Path(plog.root.path).rglob("part-*.parquet")
    row_group = pq.ParquetFile(part).metadata.row_group(0)
    encoded = {row_group.column(i).path_in_schema: row_group.column(i).has_dictionary_page
               for i in range(row_group.num_columns)}
    assert {c for c, dictionary in encoded.items() if dictionary} == {"usecase", "model_version", "source", "contract"}
    assert plog.read()["request_id"].to_pylist() == [f"r{i}" for i in range(200)]


def test_appends_are_written_with_a_fast_codec_and_compaction_with_zstd(settings: Settings) -> None:
    """zstd over a batch's measured numbers was half of its log's write (issue 19): an append
    takes snappy, and compaction, off the scoring path, rewrites a day small with zstd."""
    import pyarrow.parquet as pq

    def codecs(pattern: str) -> set[str]:
        files = list(Path(plog.root.path).rglob(pattern))
        assert files, pattern
        groups = [pq.ParquetFile(f).metadata.row_group(0) for f in files]
        return {g.column(i).compression for g in groups for i in range(g.num_columns)}

    plog = PredictionLog(settings, "churn")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    for i in range(2):
        plog.append([_record(i, yesterday)], source="batch")
    assert codecs("part-*.parquet") == {"SNAPPY"}
    assert plog.compact().files == 2
    assert codecs("compact-*.parquet") == {"ZSTD"}
    assert plog.read()["request_id"].to_pylist() == ["r0", "r1"]


def test_bad_records_are_refused_whole(settings: Settings) -> None:
    plog = PredictionLog(settings, "churn")
    with pytest.raises(InvalidInput, match="source: must be one of"):
        plog.append([_record(1)], source="carrier-pigeon")
    with pytest.raises(InvalidInput, match="missing column.*model_version"):
        plog.append([{"request_id": "x", "prediction": 1}], source="rest")
    assert plog.read().num_rows == 0


def test_feedback_stores_known_ids_and_reports_unknown(settings: Settings, approved_usecase) -> None:
    approved_usecase(settings)
    PredictionLog(settings, "churn").append([_record(1), _record(2)], source="rest")
    # labels drive monitoring and retraining: the service itself checks who may send them
    with pytest.raises(PermissionDenied, match="dana may not label on use case 'churn'"):
        record_feedback(settings, "dana", "churn", [("r1", 1)])
    result = record_feedback(settings, "eve", "churn", [("r1", 1), ("nope", 0), ("r2", 0)])
    assert (result.recorded, result.unknown) == (2, ["nope"])
    labels = current(settings, "churn").views.values()
    assert [(v.request_id, v.label, v.labeled_by) for v in labels] == [("r1", 1, "eve"), ("r2", 0, "eve")]
    with pytest.raises(InvalidInput, match=r"\[0\].label: required"):
        record_feedback(settings, "eve", "churn", [("r1", None)])


def test_async_logger_batches_and_counts_drops_instead_of_blocking(settings: Settings) -> None:
    plog = PredictionLog(settings, "churn")
    logger = AsyncPredictionLogger(plog, max_records=50, max_seconds=0.05)
    for i in range(120):
        logger.log(_record(i), "rest" if i % 3 else "shadow")
    logger.flush()
    table = plog.read()
    assert table.num_rows == 120
    assert table.filter(pa.compute.equal(table["source"], "shadow")).num_rows == 40
    logger.close()

    tiny = AsyncPredictionLogger(PredictionLog(settings, "tiny"), capacity=1, max_seconds=5)
    before = LOG_DROPPED.labels("tiny")._value.get()
    tiny.close()  # the writer stops draining: the deque fills and further records are dropped
    for i in range(5):
        tiny.log(_record(i))
    assert LOG_DROPPED.labels("tiny")._value.get() - before == 4


def test_the_logger_keeps_each_model_s_own_features_in_one_batch(settings: Settings) -> None:
    """A canary challenger may take a feature the champion does not: its records, written in the
    same batch as the champion's, keep it (a batch's columns were the first record's), and the
    champion's rows have it null."""
    plog = PredictionLog(settings, "churn")
    logger = AsyncPredictionLogger(plog, max_records=1000, max_seconds=60)
    for i in range(4):
        logger.log(_record(i) if i % 2 == 0 else {**_record(i), "model_version": "2", "support_calls": i})
    logger.flush()
    logger.close()
    table = plog.read().sort_by("request_id")
    assert table["model_version"].to_pylist() == ["1", "2", "1", "2"]
    assert table["support_calls"].to_pylist() == [None, 1, None, 3]
    assert table["tenure_months"].to_pylist() == [0, 1, 2, 3]


def test_the_logger_writes_the_table_from_pylist_makes(settings: Settings) -> None:
    """The logger gathers each group's records as columns while they are logged, numbers in
    native arrays: it writes what ``from_pylist`` makes of the same records, where ints turn
    float, numbers turn None, a text turns None, and a record Arrow refuses is dropped alone."""
    ts = datetime(2026, 11, 30, 12, tzinfo=UTC)
    records = [_record(0), {**_record(1), "tenure_months": 2.5}, {**_record(2), "probability": None},
               {**_record(3), "contract": None}, {**_record(4), "tenure_months": 10**20}, _record(5),
               {**_record(6), "latency_seconds": 1}]
    records = [{**r, "ts": ts + timedelta(seconds=i)} for i, r in enumerate(records)]
    logged, direct = PredictionLog(settings, "logged"), PredictionLog(settings, "direct")
    logger = AsyncPredictionLogger(logged, max_seconds=60)
    for record in records:
        logger.log(record)
    logger.flush()
    logger.close()
    direct.append([r for r in records if r["tenure_months"] != 10**20], source="rest")
    table = logged.read()
    assert table["request_id"].to_pylist() == ["r0", "r1", "r2", "r3", "r5", "r6"]
    assert table.drop(["usecase"]).equals(direct.read().drop(["usecase"]))

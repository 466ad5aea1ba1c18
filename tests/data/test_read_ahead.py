"""Reading a batch stream ahead in a thread of its own, or shared with a reader in a thread of
its own: the same batches, the same errors, no thread left behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pyarrow as pa
import pytest

from valueloop.data.ahead import read_ahead, shared
from valueloop.errors import InvalidInput

SCHEMA = pa.schema([("n", pa.int64())])


def _batches(count: int, fail_at: int | None = None) -> Iterator[pa.RecordBatch]:
    for i in range(count):
        if i == fail_at:
            raise InvalidInput(f"sources.s: cannot be read at batch {i}")
        yield pa.record_batch([pa.array([i, i])], schema=SCHEMA)


def _reader(count: int, fail_at: int | None = None) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(SCHEMA, _batches(count, fail_at))


def test_the_batches_come_in_order_read_by_a_thread_of_their_own() -> None:
    seen = []

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in _batches(50):
            seen.append(threading.current_thread().name)
            yield batch

    with read_ahead(pa.RecordBatchReader.from_batches(SCHEMA, batches()), "read-s", depth=2) as ahead:
        assert ahead.schema == SCHEMA
        assert ahead.read_all().column("n").to_pylist() == [i for i in range(50) for _ in (0, 1)]
    assert set(seen) == {"read-s"}


def test_the_readers_error_is_raised_where_the_batches_are_read() -> None:
    with read_ahead(_reader(10, fail_at=7), "read-s") as ahead:
        assert [next(ahead).num_rows for _ in range(7)] == [2] * 7
        with pytest.raises(InvalidInput, match="cannot be read at batch 7"):
            next(ahead)


def test_a_consumer_that_stops_early_leaves_no_thread_behind() -> None:
    with read_ahead(_reader(1_000), "read-abandoned", depth=2) as ahead:
        next(ahead)
    assert "read-abandoned" not in {t.name for t in threading.enumerate()}


def _numbers(reader: pa.RecordBatchReader) -> list[int]:
    return reader.read_all().column("n").to_pylist()


def test_a_shared_stream_hands_every_batch_to_both_readers_in_order() -> None:
    with shared(_reader(50), "tally-s", _numbers, depth=2) as (here, there):
        assert _numbers(here) == [i for i in range(50) for _ in (0, 1)]
        assert there.result() == [i for i in range(50) for _ in (0, 1)]
    assert "tally-s" not in {t.name for t in threading.enumerate()}


def test_a_shared_readers_failure_is_its_own_and_the_batches_flow_on() -> None:
    def fails(reader: pa.RecordBatchReader) -> None:
        next(reader)
        raise ValueError("the tally cannot be taken")

    with shared(_reader(200), "tally-failing", fails, depth=1) as (here, there):
        assert len(_numbers(here)) == 400
        assert isinstance(there.exception(), ValueError)


def test_leaving_a_shared_stream_early_stops_the_other_reader() -> None:
    with shared(_reader(1_000), "tally-abandoned", _numbers, depth=2) as (here, there):
        next(here)
    assert "tally-abandoned" not in {t.name for t in threading.enumerate()}
    assert there.exception() is not None

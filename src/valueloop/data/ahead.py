"""A record batch stream read ahead in a thread of its own, a few batches deep.

An ingest's stages (parsing a source, treating it in the private DuckDB, writing the
transform's result) each ran in the thread that pulled the next batch, so one core did them all
one after another while the other waited. Read ahead, the stage before runs on the other core
while the next one works; the queue's depth bounds the memory to a few batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: batches held ready at most
DEPTH = 3
#: how often a blocked side looks whether the other has gone, in seconds
_POLL = 0.1
_END = object()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


@contextmanager
def read_ahead(reader: pa.RecordBatchReader, name: str, depth: int = DEPTH) -> Iterator[pa.RecordBatchReader]:
    """``reader``'s batches, in order, read by a thread named ``name`` from the first one asked
    for; its error is raised where the batches are read. Leaving stops the thread: a consumer
    that stopped early (the transform failed) leaves no thread blocked on a full queue."""
    import pyarrow as pa

    ready: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def fill() -> None:
        try:
            for batch in reader:
                if not put(batch):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failed(exc))
            return
        put(_END)

    thread = threading.Thread(target=fill, name=name, daemon=True)

    def drain() -> Iterator[pa.RecordBatch]:
        thread.start()
        while True:
            try:
                item = ready.get(timeout=_POLL)
            except queue.Empty:
                if stop.is_set():
                    raise CancelledError(f"{name}: stopped before its end") from None
                continue
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    try:
        yield pa.RecordBatchReader.from_batches(reader.schema, drain())
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()

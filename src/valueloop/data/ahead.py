"""A record batch stream read ahead in a thread of its own, a few batches deep, or shared with a
second reader in a thread of its own.

An ingest's stages (parsing a source, treating it in the private DuckDB, writing the
transform's result) each ran in the thread that pulled the next batch, so one core did them all
one after another while the other waited. Read ahead, the stage before runs on the other core
while the next one works; the queue's depth bounds the memory to a few batches. Shared, a
stream is read twice in one pass: the staged file is written while its aggregates are taken.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")

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
        yield from _taken(ready, stop, name)

    try:
        yield pa.RecordBatchReader.from_batches(reader.schema, drain())
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()


def _taken(ready: queue.Queue[object], stop: threading.Event, name: str) -> Iterator[pa.RecordBatch]:
    """The batches put in ``ready`` up to its end; the error put there, or a cancellation once
    ``stop`` is set, is raised."""
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


@contextmanager
def shared(reader: pa.RecordBatchReader, name: str, consume: Callable[[pa.RecordBatchReader], T],
           depth: int = DEPTH) -> Iterator[tuple[pa.RecordBatchReader, Future[T]]]:
    """``reader``'s batches, and the future of ``consume`` given the same batches in a thread
    named ``name`` as they are read here: two passes for one. The reader here waits while the
    other is ``depth`` batches behind, so the memory holds a few; once ``consume`` has ended
    (its result or error in the future) the batches go on here alone. The future is done once
    every batch was read here; leaving before that cancels ``consume``'s stream."""
    import pyarrow as pa

    ready: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()
    done: Future[T] = Future()

    def run() -> None:
        try:
            done.set_result(consume(pa.RecordBatchReader.from_batches(reader.schema, _taken(ready, stop, name))))
        except BaseException as exc:  # noqa: BLE001 - the caller reads it from the future
            done.set_exception(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)

    def put(item: object) -> None:
        while not done.done():
            try:
                ready.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def both() -> Iterator[pa.RecordBatch]:
        thread.start()
        for batch in reader:
            put(batch)
            yield batch
        put(_END)
        thread.join()

    try:
        yield pa.RecordBatchReader.from_batches(reader.schema, both()), done
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()

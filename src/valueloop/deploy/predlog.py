"""The prediction log: every served prediction with its features, model version and latency,
written by REST serving, batch and stream scoring, read by the Operate phase.

Layout under the ``prediction_log`` setting (a folder, or ``s3://bucket/prefix`` shared by every
replica and worker), one prefix per use case::

    <usecase>/date=YYYY-MM-DD/part-<writer>-<sequence>.parquet   predictions (one file per flush)
    <usecase>/date=YYYY-MM-DD/compact-<uuid>.parquet             a day's small files, compacted
    <usecase>/labels/part-<writer>-<sequence>.parquet            ground truth by request id, with who
                                                                 sent it: :mod:`valueloop.deploy.labels`

Files are immutable and every writer (a serve replica, a batch job, a stream consumer) names its
own by its writer id (host, process, random) and a sequence number, so any number of them append
side by side without ever naming the same file. A file appears whole or not at all: on local disk
it is written under a hidden name (naming its host and process), fsynced and renamed, and
``valueloop doctor`` removes what a dead writer left (:func:`partial_files`); on S3 it is one PUT
of the finished bytes.
A compacted file names, in its Parquet metadata, the files it replaces: readers leave those out
from the moment it exists, so a compaction that dies before deleting them loses and doubles
nothing. Readers list only the days of the window they read, and push the time filter down to
the files' row groups. Feature columns keep their types; files whose types differ are unified on
read (int → float).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from array import array
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from valueloop.config import Settings
from valueloop.errors import InvalidInput
from valueloop.storage import Location
from valueloop.store.intents import crash_point

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("valueloop.deploy.predlog")

SOURCES = ("rest", "batch", "stream", "shadow")
#: how a file being written ends, after ``@<host>@<process id>`` (the writer the doctor asks after)
PARTIAL = ".tmp"
#: Columns every record has; every other column is a feature.
RESERVED = ("request_id", "ts", "usecase", "model_version", "source", "latency_seconds",
            "prediction", "probability")
#: the Parquet metadata key of a compacted file: the JSON list of the file names it replaces
REPLACES = b"valueloop.replaces"
#: files read at once: on an object store each is a request whose latency is overlapped
_READERS = 16


def log_root(settings: Settings) -> Location:
    return Location.parse(settings.prediction_log, "prediction_log")


def _root(settings: Settings, usecase: str) -> Location:
    return log_root(settings).child(usecase)


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, the zone every valueloop timestamp is in."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Writer:
    """Names a writer's files: its id (host, process, random, so two replicas on two hosts or two
    workers in one never collide) and a sequence, thread-safe."""

    def __init__(self) -> None:
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._sequence = itertools.count()
        self._lock = threading.Lock()

    def name(self, prefix: str = "part") -> str:
        with self._lock:
            return f"{prefix}-{self.id}-{next(self._sequence):08d}.parquet"


_WRITER = Writer()


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The text columns but request_id: their few distinct values (use case, source, version, a
    category) shrink under a dictionary, while building one for unique ids or measured numbers
    cost three quarters of a batch log's write, and two thirds of a batch output's (issue 19)."""
    import pyarrow as pa

    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_dictionary, pa.types.is_boolean)
    return [f.name for f in schema if f.name != "request_id" and any(is_(f.type) for is_ in text)]


#: An append's codec: zstd over measured numbers was half of a batch log's write, where snappy
#: gives up on what does not compress; compaction, off the scoring path, rewrites a day with zstd.
APPEND_CODEC = "snappy"
#: An append's min/max statistics: of the time only, which readers filter files' row groups by;
#: those of every feature and request id were a fifth of a batch log's write (issue 19).
APPEND_STATISTICS = ["ts"]


def _write_atomically(table: pa.Table, directory: Location, name: str | None = None,
                      metadata: dict[bytes, bytes] | None = None, compression: str = "zstd",
                      statistics: bool | list[str] = True) -> Location:
    """Write ``table`` as one new file in ``directory``, seen whole or not at all, with min/max
    ``statistics`` of the columns named (all by default)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = name or _WRITER.name()
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    final = directory.child(name)
    dictionary = dictionary_columns(table.schema)
    if not directory.is_local:
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, compression=compression, use_dictionary=dictionary,
                       write_statistics=statistics)
        with directory.filesystem.open_output_stream(final.path) as out:  # one PUT of whole bytes
            out.write(buffer.getvalue())
        return final
    os.makedirs(directory.path, exist_ok=True)
    temporary = os.path.join(directory.path, f".{name}@{socket.gethostname()}@{os.getpid()}{PARTIAL}")
    try:
        with open(temporary, "wb") as handle:
            pq.write_table(table, handle, compression=compression, use_dictionary=dictionary,
                           write_statistics=statistics)
            handle.flush()
            crash_point("mid-prediction-log-flush")
            os.fsync(handle.fileno())
        os.replace(temporary, final.path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    fd = os.open(directory.path, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)
    return final


def partial_files(settings: Settings, usecase: str | None = None) -> list[Path]:
    """Files a writer left under their temporary names when it died mid-flush (on this host, or
    an hour ago): readers never see them, ``valueloop doctor`` removes them."""
    from valueloop.store.intents import STALE_SECONDS, pid_alive

    root = log_root(settings)
    if not root.is_local:
        return []  # an object store's upload is whole or absent: nothing is left half-written
    found = []
    for path in sorted(Path(root.path).glob(f"{usecase or '*'}/**/.*{PARTIAL}")):
        _, host, pid = path.name.removesuffix(PARTIAL).rsplit("@", 2) if path.name.count("@") >= 2 else ("", "", "")
        dead = host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))
        if dead or time.time() - path.stat().st_mtime > STALE_SECONDS:
            found.append(path)
    return found


def _listing(directory: Location) -> list[str]:
    """The names of the finished Parquet files in ``directory`` (one listing)."""
    import pyarrow.fs as pafs

    infos = directory.filesystem.get_file_info(pafs.FileSelector(directory.path, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.File
                  and i.base_name.endswith(".parquet") and not i.base_name.startswith("."))


def _replaced(directory: Location, names: list[str]) -> set[str]:
    """The files that the compacted files among ``names`` replace."""
    import pyarrow.parquet as pq

    gone: set[str] = set()
    for name in names:
        if name.startswith("compact-"):
            found = directory.child(name)
            metadata = pq.read_metadata(found.path, filesystem=found.filesystem).metadata or {}
            gone.update(json.loads(metadata.get(REPLACES, b"[]")))
    return gone


def _parts(directory: Location) -> list[Location]:
    """The files a reader of ``directory`` reads: every one not replaced by a compacted one."""
    names = _listing(directory)
    gone = _replaced(directory, names)
    return [directory.child(n) for n in names if n not in gone]


def settled(directory: Location) -> list[Location]:
    """The files a reader of ``directory`` reads, once those a compaction replaced, and died
    before deleting, are deleted: where every rewrite of the folder starts."""
    names = _listing(directory)
    gone = _replaced(directory, names)
    for name in sorted(gone & set(names)):
        directory.filesystem.delete_file(directory.child(name).path)
    return [directory.child(n) for n in names if n not in gone]


def _read_files(files: list[Location], columns: list[str] | None = None,
                problems: list[str] | None = None, filters: Any = None) -> pa.Table | None:
    """The files as one table, read side by side, with ``filters`` pushed down to their row groups.
    A file that cannot be read, or whose columns cannot be unified with the files before it, is
    named in ``problems`` and skipped (raised without a list)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def one(f: Location) -> pa.Table | Exception:
        try:
            return pq.read_table(f.path, filesystem=f.filesystem, columns=columns, filters=filters)
        except (pa.ArrowException, OSError) as exc:
            return exc

    with ThreadPoolExecutor(min(_READERS, max(1, len(files)))) as pool:
        results = list(pool.map(one, files))
    tables: list[pa.Table] = []
    schema = None
    for f, table in zip(files, results, strict=True):
        try:
            if isinstance(table, Exception):
                raise table
            schema = pa.unify_schemas([s for s in (schema, table.schema) if s is not None],
                                      promote_options="permissive")
        except (pa.ArrowException, OSError) as exc:
            if problems is None:
                raise
            problems.append(f"prediction log file {f} was skipped: {str(exc)[:200]}")
            continue
        tables.append(table.replace_schema_metadata(None))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


class Compaction(BaseModel):
    usecase: str
    days: int
    files: int
    rows: int


class PredictionLog:
    """Append-only, durable log of one use case's predictions and their feedback labels."""

    def __init__(self, settings: Settings, usecase: str) -> None:
        self.usecase = usecase
        self.root = _root(settings, usecase)

    def append(self, records: pa.Table | list[dict[str, Any]], *, source: str) -> int:
        """Write ``records`` (request_id, model_version, latency_seconds, prediction, optional
        probability and ts, plus the features) as one file per day; returns the rows written."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if source not in SOURCES:
            raise InvalidInput(f"source: must be one of {', '.join(SOURCES)}, got {source!r}")
        table = records if isinstance(records, pa.Table) else pa.Table.from_pylist(records)
        if table.num_rows == 0:
            return 0
        missing = [c for c in ("request_id", "model_version", "prediction") if c not in table.column_names]
        if missing:
            raise InvalidInput(f"prediction records: missing column(s) {', '.join(missing)}")
        now = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
        ts = (pc.fill_null(table["ts"].cast(pa.timestamp("us", tz="UTC")), now)
              if "ts" in table.column_names else pa.repeat(now, table.num_rows))
        n = table.num_rows
        fixed = {
            "request_id": table["request_id"].cast(pa.string()),
            "ts": ts,
            "usecase": pa.repeat(pa.scalar(self.usecase), n),
            "model_version": table["model_version"].cast(pa.string()),
            "source": pa.repeat(pa.scalar(source), n),
            "latency_seconds": (table["latency_seconds"].cast(pa.float64())
                                if "latency_seconds" in table.column_names else pa.nulls(n, pa.float64())),
            "prediction": table["prediction"],
            "probability": (table["probability"].cast(pa.float64())
                            if "probability" in table.column_names else pa.nulls(n, pa.float64())),
        }
        features = {c: table[c] for c in table.column_names if c not in RESERVED}
        whole = pa.table({**fixed, **features})
        days = pc.cast(whole["ts"], pa.date32())
        unique = pc.unique(days).to_pylist()
        for day in unique:
            part = whole if len(unique) == 1 else whole.filter(pc.equal(days, day))
            _write_atomically(part, self._day(day), compression=APPEND_CODEC, statistics=APPEND_STATISTICS)
        return n

    def _day(self, day: date) -> Location:
        return self.root.child(f"date={day.isoformat()}")

    def _days(self, since: datetime | None, until: datetime | None) -> list[Location]:
        """The day partitions of the window: named from its bounds when it has both (nothing else
        is listed), else found by listing the use case's prefix."""
        import pyarrow.fs as pafs

        first = _utc(since).date() if since else date.min
        last = _utc(until).date() if until else date.max
        if since is not None and until is not None:
            return [self._day(first + timedelta(days=i)) for i in range((last - first).days + 1)]
        infos = self.root.filesystem.get_file_info(pafs.FileSelector(self.root.path, allow_not_found=True))
        days = []
        for info in infos:
            try:
                day = date.fromisoformat(info.base_name.removeprefix("date="))
            except ValueError:
                continue
            if info.type == pafs.FileType.Directory and first <= day <= last:
                days.append(self._day(day))
        return sorted(days, key=str)

    def days(self) -> list[Location]:
        """Every day partition of the log, oldest first."""
        return self._days(None, None)

    def files(self, since: datetime | None = None, until: datetime | None = None) -> list[Location]:
        """The files a read of the window reads."""
        return [f for d in self._days(since, until) for f in _parts(d)]

    def read(self, since: datetime | None = None, until: datetime | None = None,
             problems: list[str] | None = None) -> pa.Table:
        """Predictions with ``since <= ts < until`` (naive datetimes are UTC), oldest first. With
        a ``problems`` list, a damaged file is named there and skipped instead of raising."""
        import pyarrow as pa
        import pyarrow.compute as pc

        ts = pc.field("ts")
        bounds = ([ts >= pa.scalar(_utc(since), pa.timestamp("us", tz="UTC"))] if since else []) + \
                 ([ts < pa.scalar(_utc(until), pa.timestamp("us", tz="UTC"))] if until else [])
        condition = bounds[0] & bounds[1] if len(bounds) == 2 else (bounds[0] if bounds else None)
        table = _read_files(self.files(since, until), problems=problems, filters=condition)
        if table is None:
            return pa.table({
                "request_id": pa.array([], pa.string()), "ts": pa.array([], pa.timestamp("us", tz="UTC")),
                "usecase": pa.array([], pa.string()), "model_version": pa.array([], pa.string()),
                "source": pa.array([], pa.string()), "latency_seconds": pa.array([], pa.float64()),
                "prediction": pa.array([], pa.null()), "probability": pa.array([], pa.float64()),
            })
        return table.sort_by("ts")

    def request_ids(self) -> set[str]:
        table = _read_files(self.files(), columns=["request_id"], problems=[])  # a damaged file's ids are unknown
        return set() if table is None else set(table["request_id"].to_pylist())

    def compact(self, before: date | None = None, min_files: int = 2) -> Compaction:
        """Rewrite each day before ``before`` (by default today: a past day gets few new files)
        that holds ``min_files`` files or more as one file, then delete the files it replaces.
        Damaged files are left as they are. Returns what was compacted."""
        import pyarrow as pa

        before = before or datetime.now(UTC).date()
        done = Compaction(usecase=self.usecase, days=0, files=0, rows=0)
        for day in self._days(None, datetime.combine(before, datetime.min.time(), UTC) - timedelta(microseconds=1)):
            live = settled(day)
            if len(live) < min_files:
                continue
            readable: list[Location] = []
            tables = []
            for f in live:
                table = _read_files([f], problems=[])
                if table is not None:
                    readable.append(f)
                    tables.append(table)
            if len(readable) < min_files:
                continue
            whole = pa.concat_tables(tables, promote_options="permissive").sort_by("ts")
            replaced = [f.name for f in readable]
            _write_atomically(whole, day, _WRITER.name("compact"), {REPLACES: json.dumps(replaced).encode()})
            crash_point("predlog.compacted")
            for f in readable:
                f.filesystem.delete_file(f.path)
            done = Compaction(usecase=self.usecase, days=done.days + 1, files=done.files + len(readable),
                              rows=done.rows + whole.num_rows)
        return done


_TYPED = {float: "d", int: "q"}
_ARROW = {"d": "float64", "q": "int64"}


class _Rows:
    """The records of one source, model version and set of fields, gathered as columns while
    they are logged: a column whose first value is a float or an int is a native ``array``, which
    becomes an Arrow array without a conversion. The writer used to turn a thousand record dicts
    into columns itself, 3.9 ms of which held the interpreter lock; the request it kept waiting
    made the compiled server's p99 (issue 19). Appending costs the request ~1 us per record.

    A value its column's array cannot take (a None, a float among ints, an int past 64 bits)
    turns that column into a plain list, which Arrow converts as ``from_pylist`` would; a bool
    among numbers is kept as 1 or 0, where ``from_pylist`` keeps it among floats only."""

    __slots__ = ("names", "columns", "rows")

    def __init__(self, names: tuple[str, ...], values: Collection[Any]) -> None:
        self.names = names
        self.columns: list[Any] = [array(_TYPED[type(v)], (v,)) if type(v) in _TYPED else [v] for v in values]
        self.rows = 1

    def add(self, values: Collection[Any]) -> None:
        try:
            for column, value in zip(self.columns, values, strict=True):
                column.append(value)
        except (TypeError, OverflowError):
            for i, (column, value) in enumerate(zip(self.columns, values, strict=True)):
                if len(column) > self.rows:
                    continue  # appended before the value that failed
                try:
                    column.append(value)
                except (TypeError, OverflowError):
                    self.columns[i] = [*column, value]
        self.rows += 1

    def table(self) -> pa.Table:
        import pyarrow as pa

        return pa.Table.from_arrays(
            [pa.Array.from_buffers(pa.type_for_alias(_ARROW[c.typecode]), len(c), [None, pa.py_buffer(c)])
             if isinstance(c, array) else pa.array(c) for c in self.columns], self.names)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.names, row, strict=True)) for row in zip(*self.columns, strict=True)]


class AsyncPredictionLogger:
    """Gathers records from request handlers and writes them in micro-batches on its own thread.

    :meth:`log` never blocks for long and never raises: it adds the record to its group's
    columns (:class:`_Rows`); a full buffer or a failed write counts the lost records in
    ``valueloop_prediction_log_dropped_total`` instead of slowing or failing a response. The
    writer wakes every ``max_seconds``, or as soon as ``max_records`` wait, and writes them all:
    a file's cost is mostly per column, not per row, so at a compiled server's ~3,500 requests a
    second one file a second took 6-8 ms of CPU a second where files of 1,000 records took 10-14,
    and the p99 at c=1 fell from 1.1 to 0.8 ms (issue 19). A record that Arrow cannot take (an
    integer past 64 bits) costs only itself, never the other callers' records of its batch.
    """

    def __init__(self, plog: PredictionLog, *, max_records: int = 10_000, max_seconds: float = 1.0,
                 capacity: int = 100_000) -> None:
        from valueloop.deploy.metrics import LOG_DROPPED

        self.plog = plog
        self.max_records, self.max_seconds, self.capacity = max_records, max_seconds, capacity
        self._pending: dict[tuple[str, Any, tuple[str, ...]], _Rows] = {}
        self._count = 0
        self._lock = threading.Lock()  # held by a log call, and by the writer taking the batch
        self._dropped = LOG_DROPPED.labels(plog.usecase)
        self._stop, self._wake = threading.Event(), threading.Event()
        self._writing = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"predlog-{plog.usecase}", daemon=True)
        self._thread.start()

    def log(self, record: dict[str, Any], source: str = "rest") -> None:
        try:
            names = tuple(record)
            key = (source, record.get("model_version"), names)
            with self._lock:
                if self._count >= self.capacity:
                    self._dropped.inc()
                    return
                rows = self._pending.get(key)
                if rows is None:
                    self._pending[key] = _Rows(names, record.values())
                else:
                    rows.add(record.values())
                self._count += 1
                if self._count == self.max_records:
                    self._wake.set()
        except Exception:  # noqa: BLE001 - whatever happens, never fail the response
            self._dropped.inc()

    def flush(self) -> None:
        """Wait until everything logged so far is written (feedback, tests, shutdown)."""
        while True:
            self._wake.set()
            with self._writing:  # a taken batch is written before the lock is released
                if not self._pending:
                    return
            time.sleep(0.005)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _write(self, batch: dict[tuple[str, Any, tuple[str, ...]], _Rows]) -> None:
        """Each source's records written at once. A canary challenger may take a feature the
        champion does not: each version's records make a table of their own, joined over the
        union of their columns."""
        import pyarrow as pa

        from valueloop.deploy.metrics import LOG_WRITTEN

        by_source: dict[str, list[pa.Table]] = {}
        for (source, _, _), rows in batch.items():
            by_source.setdefault(source, []).extend(self._tables(rows))
        for source, tables in by_source.items():
            count = sum(t.num_rows for t in tables)
            try:
                try:
                    joined = [pa.concat_tables(tables, promote_options="permissive")]
                except (pa.ArrowInvalid, pa.ArrowTypeError):  # one column's types do not meet
                    joined = tables
                LOG_WRITTEN.labels(self.plog.usecase, source).inc(
                    sum(self.plog.append(t, source=source) for t in joined if t.num_rows))
            except Exception:  # noqa: BLE001 - a bad disk must not stop the thread
                log.exception("prediction log %s: %d record(s) lost", self.plog.usecase, count)
                self._dropped.inc(count)

    def _tables(self, rows: _Rows) -> list[pa.Table]:
        import pyarrow as pa

        try:
            return [rows.table()]
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return self._halved(rows.records())

    def _halved(self, records: list[dict[str, Any]]) -> list[pa.Table]:
        """Records Arrow cannot convert together, halved until each one that breaks a batch
        stands alone and is dropped."""
        import pyarrow as pa

        try:
            return [pa.Table.from_pylist(records)]
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            if len(records) == 1:
                log.warning("prediction log %s: record %.60r not logged: %s", self.plog.usecase,
                            records[0].get("request_id"), exc)
                self._dropped.inc()
                return []
            half = len(records) // 2
            return self._halved(records[:half]) + self._halved(records[half:])

    def _run(self) -> None:
        while True:
            self._wake.wait(self.max_seconds)
            self._wake.clear()
            stopping = self._stop.is_set()
            with self._writing:
                with self._lock:
                    batch, self._pending, self._count = self._pending, {}, 0
                if batch:
                    self._write(batch)
            if stopping:
                return

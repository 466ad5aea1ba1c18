"""The prediction log: every served prediction with its features, model version and latency,
written by REST serving, batch and stream scoring, read by the Operate phase.

Layout under ``<home>/predictions/<usecase>/``::

    date=YYYY-MM-DD/part-<utc time>-<uuid>.parquet   predictions (one file per flush)
    labels/part-<utc time>-<uuid>.parquet            ground truth by request id, with who sent it
                                                     (``labeled_by``): :mod:`valueloop.deploy.labels`

Files are immutable: each is written under a hidden temporary name, fsynced, then renamed, so a
reader never sees half a file and a crash loses at most the batch being written. Several
processes (uvicorn workers, scorers) append side by side because each writes its own files.
Feature columns keep their types; files whose types differ are unified on read (int → float).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valueloop.config import Settings
from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("valueloop.deploy.predlog")

SOURCES = ("rest", "batch", "stream", "shadow")
#: Columns every record has; every other column is a feature.
RESERVED = ("request_id", "ts", "usecase", "model_version", "source", "latency_seconds",
            "prediction", "probability")


def _root(settings: Settings, usecase: str) -> Path:
    return settings.home / "predictions" / usecase


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, the zone every valueloop timestamp is in."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _write_atomically(table: pa.Table, directory: Path) -> Path:
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    name = f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}.parquet"
    final, temporary = directory / name, directory / f".{name}.tmp"
    try:
        with open(temporary, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)
    return final


def _read_files(files: Iterable[Path], columns: list[str] | None = None,
                problems: list[str] | None = None) -> pa.Table | None:
    """The files as one table. A file that cannot be read, or whose columns cannot be unified
    with the files before it, is named in ``problems`` and skipped (raised without a list)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables: list[pa.Table] = []
    schema = None
    for f in files:
        try:
            table = pq.read_table(f, columns=columns)
            schema = pa.unify_schemas([s for s in (schema, table.schema) if s is not None],
                                      promote_options="permissive")
        except (pa.ArrowException, OSError) as exc:
            if problems is None:
                raise
            problems.append(f"prediction log file {f} was skipped: {str(exc)[:200]}")
            continue
        tables.append(table)
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def _parts(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("part-*.parquet")) if directory.is_dir() else []


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
        days = pc.strftime(whole["ts"], format="%Y-%m-%d")
        for day in pc.unique(days).to_pylist():
            part = whole.filter(pc.equal(days, day))
            _write_atomically(part, self.root / f"date={day}")
        return n

    def _day_dirs(self, since: datetime | None, until: datetime | None) -> list[Path]:
        if not self.root.is_dir():
            return []
        first = _utc(since).date() if since else date.min
        last = _utc(until).date() if until else date.max
        dirs = []
        for d in sorted(self.root.glob("date=*")):
            try:
                day = date.fromisoformat(d.name.removeprefix("date="))
            except ValueError:
                continue
            if first <= day <= last:
                dirs.append(d)
        return dirs

    def read(self, since: datetime | None = None, until: datetime | None = None,
             problems: list[str] | None = None) -> pa.Table:
        """Predictions with ``since <= ts < until`` (naive datetimes are UTC), oldest first. With
        a ``problems`` list, a damaged file is named there and skipped instead of raising."""
        import pyarrow as pa
        import pyarrow.compute as pc

        files = [f for d in self._day_dirs(since, until) for f in _parts(d)]
        table = _read_files(files, problems=problems)
        if table is None:
            return pa.table({
                "request_id": pa.array([], pa.string()), "ts": pa.array([], pa.timestamp("us", tz="UTC")),
                "usecase": pa.array([], pa.string()), "model_version": pa.array([], pa.string()),
                "source": pa.array([], pa.string()), "latency_seconds": pa.array([], pa.float64()),
                "prediction": pa.array([], pa.null()), "probability": pa.array([], pa.float64()),
            })
        if since is not None:
            table = table.filter(pc.greater_equal(table["ts"], pa.scalar(_utc(since), table["ts"].type)))
        if until is not None:
            table = table.filter(pc.less(table["ts"], pa.scalar(_utc(until), table["ts"].type)))
        return table.sort_by("ts")

    def request_ids(self) -> set[str]:
        files = [f for d in self._day_dirs(None, None) for f in _parts(d)]
        table = _read_files(files, columns=["request_id"], problems=[])  # a damaged file's ids are unknown
        return set() if table is None else set(table["request_id"].to_pylist())


class AsyncPredictionLogger:
    """Gathers records from request handlers and writes them in micro-batches on its own thread.

    :meth:`log` never blocks and never raises: it appends to a bounded deque (no lock, no thread
    wake-up per record); a full deque or a failed write counts the lost records in
    ``valueloop_prediction_log_dropped_total`` instead of slowing or failing a response. The
    writer wakes every ``max_seconds``, or as soon as ``max_records`` wait, and writes them all.
    A record that Arrow cannot take (an integer past 64 bits) costs only itself, never the other
    callers' records of its batch.
    """

    def __init__(self, plog: PredictionLog, *, max_records: int = 1000, max_seconds: float = 1.0,
                 capacity: int = 100_000) -> None:
        from valueloop.deploy.metrics import LOG_DROPPED

        self.plog = plog
        self.max_records, self.max_seconds, self.capacity = max_records, max_seconds, capacity
        self._records: deque[tuple[str, dict[str, Any]]] = deque()
        self._dropped = LOG_DROPPED.labels(plog.usecase)
        self._stop, self._wake = threading.Event(), threading.Event()
        self._writing = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"predlog-{plog.usecase}", daemon=True)
        self._thread.start()

    def log(self, record: dict[str, Any], source: str = "rest") -> None:
        try:
            if len(self._records) >= self.capacity:
                self._dropped.inc()
                return
            self._records.append((source, record))
            if len(self._records) == self.max_records:
                self._wake.set()
        except Exception:  # noqa: BLE001 - whatever happens, never fail the response
            self._dropped.inc()

    def flush(self) -> None:
        """Wait until everything logged so far is written (feedback, tests, shutdown)."""
        while True:
            self._wake.set()
            with self._writing:  # a drained batch is written before the lock is released
                if not self._records:
                    return
            time.sleep(0.005)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        from valueloop.deploy.metrics import LOG_WRITTEN

        by_source: dict[str, list[dict[str, Any]]] = {}
        for source, record in batch:
            by_source.setdefault(source, []).append(record)
        for source, records in by_source.items():
            try:
                LOG_WRITTEN.labels(self.plog.usecase, source).inc(self._append(records, source))
            except Exception:  # noqa: BLE001 - a bad disk must not stop the thread
                log.exception("prediction log %s: %d record(s) lost", self.plog.usecase, len(records))
                self._dropped.inc(len(records))

    def _append(self, records: list[dict[str, Any]], source: str) -> int:
        """Append the records; a batch Arrow cannot convert is halved until each record that
        breaks it stands alone and is dropped. Returns the records written."""
        import pyarrow as pa

        try:
            table = pa.Table.from_pylist(records)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            if len(records) == 1:
                log.warning("prediction log %s: record %.60r not logged: %s", self.plog.usecase,
                            records[0].get("request_id"), exc)
                self._dropped.inc()
                return 0
            half = len(records) // 2
            return self._append(records[:half], source) + self._append(records[half:], source)
        return self.plog.append(table, source=source)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.max_seconds)
            self._wake.clear()
            stopping = self._stop.is_set()
            with self._writing:
                batch = [self._records.popleft() for _ in range(len(self._records))]
                if batch:
                    self._write(batch)
            if stopping:
                return

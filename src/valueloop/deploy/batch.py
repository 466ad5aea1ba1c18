"""Batch scoring: a registered model over a dataset, in process or on a Dask cluster.

A job cuts its input into parts of ``part_rows`` consecutive rows. Each part is scored and
committed as its own Parquet file in a staging directory beside the output, listed in a
manifest; a resumed job (``resume=True``) skips the parts the manifest lists, so a crash costs
at most the part in hand and never duplicates a row. The output is published whole at the end
(one rename, or one Delta commit). Memory is set by ``batch_size`` in process and by
``part_rows`` times the parts in flight on Dask, never by the size of the input.

Permission: :attr:`Action.deploy` (developers and operations): batch scoring is one of the
three ways a model is deployed, like REST serving and the stream consumer.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import select

from valueloop.config import Settings
from valueloop.deploy import batch_tables
from valueloop.deploy.batch_io import BatchInput, aligned_batches, open_input, parse_output, read_batches
from valueloop.errors import Conflict, InvalidInput, NotFound
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.usecases import get_usecase, spec_of
from valueloop.outcomes.users import get_user
from valueloop.store import session
from valueloop.store.models import utcnow

if TYPE_CHECKING:
    import pyarrow as pa

    from valueloop.deploy.scoring import Scorer

BatchJob = batch_tables.BatchJob
#: progress(rows done, rows in total)
Progress = Callable[[int, int], None]
ORDINAL = "row"
_T = TypeVar("_T")


class BatchOptions(BaseModel):
    model: str = Field("champion", description="an alias (champion, challenger) or a version number")
    batch_size: int = Field(65_536, ge=1, description="rows scored at once: sets the memory in process")
    part_rows: int = Field(1_048_576, ge=1, description="rows per committed part: the unit of resume")
    overwrite: bool = False
    resume: bool = False
    dask: str | None = Field(None, description="a scheduler address, or local:N for N worker processes")
    id_column: str | None = None


class BatchJobView(BaseModel):
    id: str
    usecase: str
    model_version: str
    model_ref: str
    input: str
    input_fingerprint: str
    output: str
    output_format: str
    staging: str
    executor: str
    part_rows: int
    parts_total: int
    parts_done: int
    row_count: int
    status: str
    error: str | None
    actor: str
    started_at: datetime
    finished_at: datetime | None


def _view(job: BatchJob) -> BatchJobView:
    return BatchJobView.model_validate(job, from_attributes=True)


def _id_column(options: BatchOptions, spec_identifiers: list[str], names: list[str]) -> str | None:
    """The declared id column, else the first ``*_id`` column; None means row ordinals."""
    if options.id_column:
        if options.id_column not in names:
            raise InvalidInput(f"--id {options.id_column!r}: no such input column; "
                               f"columns: {', '.join(names)}")
        return options.id_column
    declared = [c for c in spec_identifiers if c in names]
    return (declared or [c for c in names if c.endswith("_id")] or [None])[0]


def score_batch(scorer: Scorer, batch: pa.RecordBatch | pa.Table, id_column: str | None,
                first_row: int) -> pa.Table:
    """The output rows of one batch: id, prediction, probability (classifiers), version, time."""
    import pyarrow as pa

    prediction, probability = scorer.predict(batch)
    n = batch.num_rows
    ids = batch.column(id_column) if id_column else pa.array(range(first_row, first_row + n), pa.int64())
    columns: dict[str, Any] = {id_column or ORDINAL: ids, "prediction": pa.array(prediction)}
    if probability is not None:
        columns["probability"] = pa.array(probability, pa.float64())
    columns["model_version"] = pa.repeat(pa.scalar(scorer.version), n)
    columns["scored_at"] = pa.repeat(pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC")), n)
    return pa.table(columns)


def score_part(scorer: Scorer, table: pa.Table, id_column: str | None, first_row: int,
               batch_size: int) -> pa.Table:
    """A whole part, scored ``batch_size`` rows at a time exactly as in process (Dask workers)."""
    import pyarrow as pa

    return pa.concat_tables(
        score_batch(scorer, table.slice(start, batch_size), id_column, first_row + start)
        for start in range(0, table.num_rows, batch_size)
    )


class _Staging:
    """The committed parts of one job and their manifest; every write is a rename."""

    def __init__(self, job: BatchJobView) -> None:
        self.root = Path(job.staging)
        self.manifest_path = self.root / "manifest.json"
        self.root.mkdir(parents=True, exist_ok=True)
        if self.manifest_path.exists():
            self.manifest = json.loads(self.manifest_path.read_text())
        else:
            self.manifest = {"job": job.id, "input_fingerprint": job.input_fingerprint,
                             "model_version": job.model_version, "part_rows": job.part_rows, "parts": {}}
        if (self.manifest["input_fingerprint"], self.manifest["part_rows"]) != (
                job.input_fingerprint, job.part_rows):
            raise Conflict(f"staging {self.root} belongs to another input or part size; remove it "
                           "or run without --resume")

    def part_path(self, index: int) -> Path:
        return self.root / f"part-{index:06d}.parquet"

    def done(self) -> dict[int, int]:
        """Committed parts and their rows; a part missing its file is redone."""
        return {int(k): v for k, v in self.manifest["parts"].items() if self.part_path(int(k)).exists()}

    @contextmanager
    def part(self, index: int) -> Iterator[Callable[[pa.Table], None]]:
        """A ``write(table)`` for one part, committed (renamed, then listed) when the block ends."""
        import pyarrow.parquet as pq

        final = self.part_path(index)
        temporary = final.with_suffix(".tmp")
        writer: pq.ParquetWriter | None = None

        def write(table: pa.Table) -> None:
            nonlocal writer
            writer = writer or pq.ParquetWriter(temporary, table.schema)
            writer.write_table(table)

        yield write
        assert writer is not None, "a part has at least one row"
        writer.close()
        os.replace(temporary, final)
        self.manifest["parts"][str(index)] = pq.ParquetFile(final).metadata.num_rows
        scratch = self.manifest_path.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.manifest))
        os.replace(scratch, self.manifest_path)

    def parts(self) -> list[Path]:
        return [self.part_path(index) for index in sorted(self.done())]

    def schema(self) -> pa.Schema:
        import pyarrow.parquet as pq

        return pq.read_schema(self.part_path(min(self.done())))


def _unfinished(s: Any, usecase: str, output: str) -> BatchJob | None:
    return s.scalar(select(BatchJob).where(BatchJob.usecase == usecase, BatchJob.output == output,
                                           BatchJob.status.in_(("running", "failed")))
                    .order_by(BatchJob.started_at.desc()).limit(1))


def _executor_name(options: BatchOptions) -> str:
    return f"dask {options.dask}" if options.dask else f"in-process on {socket.gethostname()}"


def _prepare(settings: Settings, actor: str | None, name: str, input_text: str, output_text: str,
             options: BatchOptions) -> tuple[BatchJobView, Scorer, BatchInput, str | None]:
    """Check, load and open everything, then create (or take over) the job: all before any work."""
    from valueloop.deploy.scoring import authorize, load_scorer

    output = parse_output(output_text)
    with session(settings) as s:
        acting = authorize(s, actor, name)
        if output.exists() and not options.overwrite:
            raise Conflict(f"--output {output_text!r} exists; pass --overwrite to replace it")
        job = _unfinished(s, name, str(output.path)) if options.resume else None
        scorer = load_scorer(s, settings, acting.name, name, job.model_version if job else options.model)
        source = open_input(s, settings, name, input_text, scorer.column_types)
        if source.num_rows == 0:
            raise InvalidInput(f"--input {input_text!r} holds no rows")
        scorer.check(source.dataset.schema, f"--input {input_text!r}")
        spec = spec_of(get_usecase(s, name))
        identifiers = list((getattr(spec.model, "features", None) and spec.model.features.identifiers) or [])
        id_column = _id_column(options, identifiers, source.dataset.schema.names)
        if job is not None:
            if job.input_fingerprint != source.fingerprint:
                raise Conflict(f"cannot resume batch job {job.id}: input {input_text!r} changed since "
                               f"it started (fingerprint {job.input_fingerprint[:12]} → "
                               f"{source.fingerprint[:12]}); run without --resume")
            job.status, job.error, job.actor = "running", None, acting.name
            job.executor = _executor_name(options)
            audit.record(s, acting.name, "batch.resume", "batch_job", job.id, usecase=name,
                         after={"parts_done": job.parts_done, "parts_total": job.parts_total})
        else:
            job_id = uuid.uuid4().hex
            job = BatchJob(
                id=job_id, usecase=name, model_version=scorer.version, model_ref=options.model,
                input=input_text, input_fingerprint=source.fingerprint, output=str(output.path),
                output_format=output.format,
                staging=str(output.path.parent / f".{output.path.name}.valueloop-{job_id[:12]}"),
                executor=_executor_name(options), part_rows=options.part_rows,
                parts_total=-(-source.num_rows // options.part_rows), parts_done=0, row_count=0,
                status="running", actor=acting.name, started_at=utcnow(),
            )
            s.add(job)
            s.flush()
            audit.record(s, acting.name, "batch.start", "batch_job", job.id, usecase=name, after={
                "model_version": job.model_version, "input": input_text,
                "input_fingerprint": job.input_fingerprint, "output": job.output,
                "executor": job.executor})
        return _view(job), scorer, source, id_column


def _record_part(settings: Settings, job_id: str, staging: _Staging) -> None:
    done = staging.done()
    with session(settings) as s:
        job = s.get(BatchJob, job_id)
        job.parts_done, job.row_count = len(done), sum(done.values())


def _scan(source: BatchInput, scorer: Scorer, id_column: str | None, batch_size: int,
          part_rows: int) -> Iterator[tuple[int, int, pa.RecordBatch]]:
    columns = list(dict.fromkeys([*scorer.columns, *([id_column] if id_column else [])]))
    return aligned_batches(read_batches(source.dataset, columns, batch_size), part_rows)


def _read_ahead(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """``items``, with the next ``depth`` read by a thread meanwhile: decoding (Arrow releases
    the GIL) overlaps scoring. One thread, so the iterator is never advanced twice at once."""
    end = object()
    with ThreadPoolExecutor(1, thread_name_prefix="batch-read") as reader:
        ahead = deque(reader.submit(next, items, end) for _ in range(depth))
        while (item := ahead.popleft().result()) is not end:
            ahead.append(reader.submit(next, items, end))
            yield item  # type: ignore[misc]


def _run_in_process(job: BatchJobView, scorer: Scorer, source: BatchInput, id_column: str | None,
                    options: BatchOptions, staging: _Staging, settings: Settings,
                    advance: Callable[[int], None]) -> None:
    """Read ahead, score, and write behind: the model has the cores while Arrow decodes and
    encodes Parquet in other threads; at most one batch waits to be written."""
    done = staging.done()
    scan = _read_ahead(_scan(source, scorer, id_column, options.batch_size, job.part_rows))
    with ThreadPoolExecutor(1, thread_name_prefix="batch-write") as writer:
        for part, items in groupby(scan, key=itemgetter(0)):
            if part in done:
                continue
            with staging.part(part) as write:
                writing: Future[None] | None = None
                for _, first_row, batch in items:
                    scored = score_batch(scorer, batch, id_column, first_row)
                    if writing is not None:
                        writing.result()
                    writing = writer.submit(write, scored)
                    advance(batch.num_rows)
                if writing is not None:
                    writing.result()
            _record_part(settings, job.id, staging)


@contextmanager
def _dask_client(address: str) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if address.startswith("local:"):
        workers = address.removeprefix("local:")
        if not workers.isdigit() or int(workers) < 1:
            raise InvalidInput(f"--dask {address!r}: expected local:N with N worker processes >= 1")
        with LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=10)
    except OSError as exc:
        raise InvalidInput(f"--dask {address!r}: cannot reach the Dask scheduler: {exc}") from None
    with client:
        yield client


def _run_on_dask(job: BatchJobView, scorer: Scorer, source: BatchInput, id_column: str | None,
                 options: BatchOptions, staging: _Staging, settings: Settings,
                 advance: Callable[[int], None]) -> None:
    """The driver reads parts and commits results; the workers score. Output files stay local to
    the driver, so workers need neither the input's nor the output's file system."""
    import pyarrow as pa
    from distributed import wait

    assert options.dask is not None
    done = staging.done()
    with _dask_client(options.dask) as client:
        remote = client.scatter(scorer, broadcast=True)
        limit = 2 * max(1, len(client.scheduler_info()["workers"]))
        in_flight: dict[Any, int] = {}

        def collect(return_when: str) -> None:
            finished, _ = wait(list(in_flight), return_when=return_when)
            for future in finished:
                part = in_flight.pop(future)
                table = future.result()
                with staging.part(part) as write:
                    write(table)
                _record_part(settings, job.id, staging)
                advance(table.num_rows)

        for part, items in groupby(_scan(source, scorer, id_column, options.batch_size, job.part_rows),
                                   key=itemgetter(0)):
            if part in done:
                continue
            if len(in_flight) >= limit:
                collect("FIRST_COMPLETED")
            parts = list(items)
            table = pa.Table.from_batches([batch for _, _, batch in parts])
            in_flight[client.submit(score_part, remote, table, id_column, parts[0][1],
                                    options.batch_size, pure=False)] = part
        if in_flight:
            collect("ALL_COMPLETED")


def _finish(settings: Settings, job_id: str, status: str, error: str | None = None) -> BatchJobView:
    with session(settings) as s:
        job = s.get(BatchJob, job_id)
        job.status, job.error, job.finished_at = status, error, utcnow()
        audit.record(s, job.actor, f"batch.{'finish' if status == 'succeeded' else 'fail'}",
                     "batch_job", job.id, usecase=job.usecase,
                     after={"status": status, "row_count": job.row_count, "parts_done": job.parts_done,
                            "error": error})
        return _view(job)


def run_batch(
    settings: Settings, actor: str | None, usecase: str, input_text: str, output_text: str,
    options: BatchOptions | None = None, progress: Progress | None = None,
) -> BatchJobView:
    """Score ``input_text`` with the use case's model into ``output_text``, whole or not at all."""
    options = options or BatchOptions()
    job, scorer, source, id_column = _prepare(settings, actor, usecase, input_text, output_text, options)
    staging = _Staging(job)
    rows_done = sum(staging.done().values())
    if progress:
        progress(rows_done, source.num_rows)

    def advance(rows: int) -> None:
        nonlocal rows_done
        rows_done += rows
        if progress:
            progress(rows_done, source.num_rows)

    run = _run_on_dask if options.dask else _run_in_process
    try:
        run(job, scorer, source, id_column, options, staging, settings, advance)
        parse_output(output_text).publish(staging.parts(), staging.schema(), staging.root,
                                          options.overwrite)
    except BaseException as exc:
        _finish(settings, job.id, "failed", str(exc) or exc.__class__.__name__)
        raise
    shutil.rmtree(staging.root, ignore_errors=True)
    return _finish(settings, job.id, "succeeded")


def get_job(settings: Settings, actor: str | None, job_id: str) -> BatchJobView:
    with session(settings) as s:
        job = s.get(BatchJob, job_id)
        if job is None:
            raise NotFound(f"batch job {job_id}: no such job")
        require(s, get_user(s, actor), Action.view, get_usecase(s, job.usecase))
        return _view(job)


def list_jobs(settings: Settings, actor: str | None, usecase: str) -> list[BatchJobView]:
    with session(settings) as s:
        require(s, get_user(s, actor), Action.view, get_usecase(s, usecase))
        jobs = s.scalars(select(BatchJob).where(BatchJob.usecase == usecase)
                         .order_by(BatchJob.started_at))
        return [_view(j) for j in jobs]

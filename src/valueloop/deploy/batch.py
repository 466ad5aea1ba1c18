"""Batch scoring: a registered model over a dataset, in process or on a Dask cluster.

A job cuts its input into parts of ``part_rows`` consecutive rows. Each part is scored and
committed as its own Parquet file in a staging directory beside the output, listed in a
manifest; a resumed job (``resume=True``) skips the parts the manifest lists, so a crash costs
at most the part in hand and never duplicates a row. The output is published whole at the end
(one rename, or one Delta commit). Memory is set by ``batch_size`` times the cores in process
(a batch is scored on each) and by ``part_rows`` times the parts in flight on Dask, never by the
size of the input.

Rows are held to the model's contract as REST holds a request (deploy/schema.py, vectorized), and
an input as the source system exports it (with its id and personal columns) goes through the
version's pipeline first (deploy/raw.py). Every prediction also goes to the prediction log, with
the features the model saw and the request id ``<job id>/<row id>``, so the monitor sees batch
scoring too (a resumed job may log the rows of the part it redoes twice).

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
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import select

from valueloop.config import Settings
from valueloop.deploy import batch_tables
from valueloop.deploy.batch_io import (BatchInput, BatchOutput, aligned_batches, input_location, open_input,
                                       parse_output, read_batches)
from valueloop.errors import Conflict, InvalidInput, NotFound, ValueloopError
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.usecases import get_usecase, spec_of
from valueloop.outcomes.users import get_user
from valueloop.store import intents, session
from valueloop.store.models import utcnow

if TYPE_CHECKING:
    import pyarrow as pa

    from valueloop.deploy.model import ServedModel
    from valueloop.outcomes.spec import ColumnTreatment, ModelObjective

BatchJob = batch_tables.BatchJob
#: progress(rows done, rows in total)
Progress = Callable[[int, int], None]
ORDINAL = "row"
_T = TypeVar("_T")


class BatchOptions(BaseModel):
    model: str = Field("champion", description="an alias (champion, challenger) or a version number")
    log_predictions: bool = Field(True, description="every prediction also goes to the prediction log")
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


@dataclass(frozen=True)
class RowIds:
    """What names each row: the input's id column (None: the row's ordinal). The output keeps the
    id as the input holds it; the prediction log, which feedback and erasures search, names a row
    ``<job id>/<id>`` as the use case's stores keep that column: by its pseudonym when the DPIA
    pseudonymizes it, never by the raw value of a source system's export."""

    column: str | None = None
    pseudonymized: bool = False

    @property
    def name(self) -> str:
        return self.column or ORDINAL

    def logged(self, ids: pa.Array, key: str) -> pa.Array:
        if not self.pseudonymized:
            return ids
        from valueloop.data.treatments import pseudonyms

        return pseudonyms(ids, key)


def _row_ids(options: BatchOptions, objective: ModelObjective, names: list[str],
             treatments: dict[str, ColumnTreatment]) -> RowIds:
    """``--id``, else the first column the use case names rows by (``id``, ``*_id`` or the declared
    identifiers, as training leaves them out) that the DPIA lets a store keep; else row ordinals.
    A column the DPIA drops or generalizes names no row in any store."""
    from valueloop.outcomes.spec import Treatment

    def kept(column: str) -> bool:
        return column not in treatments or treatments[column].treatment in (Treatment.keep, Treatment.pseudonymize)

    column = options.id_column
    if column:
        if column not in names:
            raise InvalidInput(f"--id {column!r}: no such input column; columns: {', '.join(names)}")
        if not kept(column):
            raise InvalidInput(f"--id {column!r}: the DPIA {treatments[column].treatment.value}s '{column}', so "
                               "no store may name a row by it; name another column, or leave --id out to "
                               "number the rows")
    else:
        column = next((c for c in names if objective.identifier(c, ()) and kept(c)), None)
    rule = treatments.get(column) if column else None
    return RowIds(column, rule is not None and rule.treatment is Treatment.pseudonymize)


def _ids(batch: pa.RecordBatch | pa.Table, id_column: str | None, first_row: int) -> pa.Array:
    import pyarrow as pa

    if id_column:
        ids = batch.column(id_column)
        return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    return pa.array(range(first_row, first_row + batch.num_rows), pa.int64())


def score_batch(model: ServedModel, features: pa.Table, ids: pa.Array, id_name: str) -> pa.Table:
    """The output rows of checked features: id, prediction, probability (classifiers), version, time."""
    import pyarrow as pa

    result = model.predict_table(features)
    n = features.num_rows
    columns: dict[str, Any] = {id_name: ids, "prediction": pa.array(result.labels)}
    if result.probabilities is not None:
        columns["probability"] = pa.array(result.probabilities, pa.float64())
    columns["model_version"] = pa.repeat(pa.scalar(model.version), n)
    columns["scored_at"] = pa.repeat(pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC")), n)
    return pa.table(columns)


def score_part(model: ServedModel, features: pa.Table, ids: pa.Array, id_name: str, batch_size: int) -> pa.Table:
    """A whole part, scored ``batch_size`` rows at a time exactly as in process (Dask workers)."""
    import pyarrow as pa

    return pa.concat_tables(
        score_batch(model, features.slice(start, batch_size), ids.slice(start, batch_size), id_name)
        for start in range(0, features.num_rows, batch_size)
    )


def _log_records(job_id: str, scored: pa.Table, features: pa.Table, ids: pa.Array) -> pa.Table:
    """The prediction log's rows of a scored batch: the features the model saw, request ids
    ``<job id>/<row id>`` (what feedback names), the answer, the version and the time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {"request_id": pc.binary_join_element_wise(job_id, ids.cast(pa.string()), "/"),
               "ts": scored["scored_at"], "model_version": scored["model_version"],
               "prediction": scored["prediction"]}
    if "probability" in scored.column_names:
        columns["probability"] = scored["probability"]
    return pa.table({**columns, **{c: features[c] for c in features.column_names}})


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

        from valueloop.deploy.predlog import dictionary_columns

        final = self.part_path(index)
        temporary = final.with_suffix(".tmp")
        writer: pq.ParquetWriter | None = None

        def write(table: pa.Table) -> None:
            nonlocal writer
            writer = writer or pq.ParquetWriter(temporary, table.schema,
                                                use_dictionary=dictionary_columns(table.schema))
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
             options: BatchOptions) -> tuple[BatchJobView, ServedModel, BatchInput, RowIds]:
    """Check, load and open everything, then create (or take over) the job: all before any work."""
    from valueloop.deploy.model import load_ref
    from valueloop.deploy.scoring import authorize
    from valueloop.deploy.table_rules import check_schema
    from valueloop.outcomes.privacy import treatments_in_force

    output = parse_output(output_text)
    where = input_location(input_text)
    with session(settings) as s:
        acting = authorize(s, actor, name)
        if output.exists() and not options.overwrite:
            raise Conflict(f"--output {output_text!r} exists; pass --overwrite to replace it")
        job = _unfinished(s, name, output.location.uri) if options.resume else None
        model = load_ref(s, settings, acting.name, name, job.model_version if job else options.model)
        source = open_input(s, settings, name, input_text, where, model.validator.csv_types)
        if source.num_rows == 0:
            raise InvalidInput(f"--input {input_text!r} holds no rows")
        names = set(source.dataset.schema.names)
        if model.raw is None or not model.raw.is_raw(names):  # raw columns are checked as they are treated
            check_schema(model.validator.columns, source.dataset.schema, f"--input {input_text!r}",
                         f"model {name} v{model.version}")
        usecase = get_usecase(s, name)
        ids = _row_ids(options, spec_of(usecase).model, source.dataset.schema.names, treatments_in_force(usecase))
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
                id=job_id, usecase=name, model_version=model.version, model_ref=options.model,
                input=input_text, input_fingerprint=source.fingerprint, output=output.location.uri,
                output_format=output.format,
                staging=str(output.staging(settings.home, job_id)),
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
        return _view(job), model, source, ids


def _record_part(settings: Settings, job_id: str, staging: _Staging) -> None:
    done = staging.done()
    with session(settings) as s:
        job = s.get(BatchJob, job_id)
        job.parts_done, job.row_count = len(done), sum(done.values())


def _scan(source: BatchInput, model: ServedModel, id_column: str | None, batch_size: int,
          part_rows: int) -> Iterator[tuple[int, int, pa.Table, pa.Array]]:
    """(part, first row, checked features, ids) of each batch: a raw record is treated as the
    model's training data was; a row that breaks the signature's rules ends the job with the
    message a REST request gets, the rows numbered in the input."""
    names = source.dataset.schema.names
    wanted = {*model.validator.names, *(model.raw.fields if model.raw else ()), *([id_column] if id_column else [])}
    columns = [n for n in names if n in wanted]
    for part, first_row, batch in aligned_batches(read_batches(source.dataset, columns, batch_size), part_rows):
        yield part, first_row, model.features(batch, first_row), _ids(batch, id_column, first_row)


def _read_ahead(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """``items``, with the next ``depth`` read by a thread meanwhile: decoding (Arrow releases
    the GIL) overlaps scoring. One thread, so the iterator is never advanced twice at once."""
    end = object()
    with ThreadPoolExecutor(1, thread_name_prefix="batch-read") as reader:
        ahead = deque(reader.submit(next, items, end) for _ in range(depth))
        while (item := ahead.popleft().result()) is not end:
            ahead.append(reader.submit(next, items, end))
            yield item  # type: ignore[misc]


def _sink(settings: Settings, job: BatchJobView, options: BatchOptions, ids: RowIds,
          write: Callable[[pa.Table], None]) -> Callable[[pa.Table, pa.Table], int]:
    """What is done with each scored batch, on the writer's thread: into the part, and with the
    features the model saw into the prediction log (source ``batch``), so the monitor sees it. A
    log that cannot be written fails the job before its part is committed: no output is published
    from predictions the monitor never saw."""
    import pyarrow as pa

    from valueloop.deploy.predlog import PredictionLog

    plog = PredictionLog(settings, job.usecase) if options.log_predictions else None

    def sink(scored: pa.Table, features: pa.Table) -> int:
        write(scored)
        if plog is None:
            return scored.num_rows
        try:
            logged = ids.logged(scored.column(0), settings.pseudonym_key)
            plog.append(_log_records(job.id, scored, features, logged), source="batch")
        except (OSError, pa.ArrowException) as exc:
            raise ValueloopError(f"batch job {job.id}: the prediction log {plog.root} could not be written "
                                 f"({exc}); no output was published; run it again with --resume") from None
        return scored.num_rows

    return sink


def _scorers() -> int:
    """Batches scored at once: one per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _one_thread_each(scorers: int) -> ThreadPoolExecutor:
    """Threads that each score a batch with OpenMP limited to themselves: the model's own
    threads (scikit-learn's histogram trees, LightGBM) meet at a barrier after every tree, so one
    core taken by the reader, the writer or another process stalls them all; one batch per
    core keeps every core busy without waiting on the others."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    return ThreadPoolExecutor(scorers, thread_name_prefix="batch-score",
                              initializer=lambda: controller.limit(limits=1, user_api="openmp"))


def _in_order(pool: ThreadPoolExecutor, fn: Callable[..., _T], items: Iterator[tuple[Any, ...]],
              depth: int) -> Iterator[_T]:
    """``fn(*item)`` of each item on ``pool``, yielded in the items' order, with up to ``depth``
    more submitted behind the one awaited; what has not started when the caller stops (an error)
    is cancelled, so nothing runs after it."""
    ahead: deque[Future[_T]] = deque()
    try:
        for item in items:
            ahead.append(pool.submit(fn, *item))
            if len(ahead) > depth:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
    finally:
        for future in reversed(ahead):  # the last first: none starts after one behind it was cancelled
            future.cancel()


def _run_in_process(job: BatchJobView, model: ServedModel, source: BatchInput, ids: RowIds,
                    options: BatchOptions, staging: _Staging, settings: Settings,
                    advance: Callable[[int], None]) -> None:
    """Read ahead, score a batch per core, and write behind in order: the model has the cores
    while Arrow decodes and encodes Parquet in other threads. One batch waits for the scoring
    threads beyond one each, and two for the writer beyond the one it writes: a scoring thread
    that is done takes the next batch at once, without waiting for the main thread, nor for the
    writer to sync a file (on a quiet machine, the cores idled meanwhile)."""
    done = staging.done()
    scan = _read_ahead(_scan(source, model, ids.column, options.batch_size, job.part_rows))
    scorers = _scorers()

    def score(features: pa.Table, row_ids: pa.Array) -> tuple[pa.Table, pa.Table]:
        return score_batch(model, features, row_ids, ids.name), features

    with _one_thread_each(scorers) as scoring, ThreadPoolExecutor(1, thread_name_prefix="batch-write") as writer:
        for part, items in groupby(scan, key=itemgetter(0)):
            if part in done:
                continue
            with staging.part(part) as write:
                for rows in _in_order(writer, _sink(settings, job, options, ids, write),
                                      _in_order(scoring, score, (i[2:] for i in items), scorers), 2):
                    advance(rows)
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


def _run_on_dask(job: BatchJobView, model: ServedModel, source: BatchInput, ids: RowIds,
                 options: BatchOptions, staging: _Staging, settings: Settings,
                 advance: Callable[[int], None]) -> None:
    """The driver reads and checks parts and commits results; the workers score. Output files
    stay local to the driver, so workers need neither the input's nor the output's file system."""
    import pyarrow as pa
    from distributed import wait

    assert options.dask is not None
    done = staging.done()
    with _dask_client(options.dask) as client:
        remote = client.scatter(model, broadcast=True)
        limit = 2 * max(1, len(client.scheduler_info()["workers"]))
        in_flight: dict[Any, tuple[int, pa.Table]] = {}

        def collect(return_when: str) -> None:
            finished, _ = wait(list(in_flight), return_when=return_when)
            for future in finished:
                part, features = in_flight.pop(future)
                table = future.result()
                with staging.part(part) as write:
                    _sink(settings, job, options, ids, write)(table, features)
                _record_part(settings, job.id, staging)
                advance(table.num_rows)

        for part, items in groupby(_scan(source, model, ids.column, options.batch_size, job.part_rows),
                                   key=itemgetter(0)):
            if part in done:
                continue
            if len(in_flight) >= limit:
                collect("FIRST_COMPLETED")
            parts = list(items)
            features = pa.concat_tables([f for _, _, f, _ in parts])
            row_ids = pa.concat_arrays([i for _, _, _, i in parts])
            in_flight[client.submit(score_part, remote, features, row_ids, ids.name, options.batch_size,
                                    pure=False)] = (part, features)
        if in_flight:
            collect("ALL_COMPLETED")


def _finish(settings: Settings, job_id: str, status: str, error: str | None = None,
            intent: int | None = None) -> BatchJobView:
    """The job's end, with its output's intent marked done in the same transaction."""
    with session(settings) as s:
        job = s.get(BatchJob, job_id)
        _end(s, job, status, error, job.actor)
        if intent is not None:
            intents.finish(s, intent)
        return _view(job)


def _end(s: Any, job: BatchJob, status: str, error: str | None, actor: str) -> None:
    job.status, job.error, job.finished_at = status, error, utcnow()
    audit.record(s, actor, f"batch.{'finish' if status == 'succeeded' else 'fail'}",
                 "batch_job", job.id, usecase=job.usecase,
                 after={"status": status, "row_count": job.row_count, "parts_done": job.parts_done,
                        "error": error})


def run_batch(
    settings: Settings, actor: str | None, usecase: str, input_text: str, output_text: str,
    options: BatchOptions | None = None, progress: Progress | None = None,
) -> BatchJobView:
    """Score ``input_text`` with the use case's model into ``output_text``, whole or not at all."""
    options = options or BatchOptions()
    job, model, source, ids = _prepare(settings, actor, usecase, input_text, output_text, options)
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
        run(job, model, source, ids, options, staging, settings, advance)
        intent = _publish(settings, job, parse_output(output_text), staging, options.overwrite)
    except BaseException as exc:
        _finish(settings, job.id, "failed", str(exc) or exc.__class__.__name__)
        raise
    shutil.rmtree(staging.root, ignore_errors=True)
    return _finish(settings, job.id, "succeeded", intent=intent)


def _publish(settings: Settings, job: BatchJobView, output: BatchOutput, staging: _Staging,
             overwrite: bool) -> int:
    """Publish the output under an intent naming what it replaces, so that the doctor can tell a
    published output (a new file, folder or Delta version) from a half-published one."""
    with intents.writing(settings, intents.BATCH_OUTPUT, job.usecase, output.location.uri, job.actor,
                         job=job.id, staging=str(staging.root), text=output.text,
                         **output.identity()) as intent:
        output.publish(staging.parts(), staging.schema(), staging.root, overwrite)
        intents.crash_point("after-batch-output-publish")
    return intent


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


def recover_publish(session: Any, actor: str, row: intents.Intent, *, repair: bool) -> str:
    """The doctor's step for a publish whose process died: completed when the output is whole
    (the job succeeded), otherwise rolled back (the job failed; ``--resume`` takes it up without
    scoring its committed parts again). Returns what repairing does."""
    output = parse_output(row.detail["text"])
    staging, job = Path(row.detail["staging"]), session.get(BatchJob, row.detail["job"])
    if output.published(row.detail):
        if repair:
            output.complete(staging)
            if job.status != "succeeded":
                _end(session, job, "succeeded", None, actor)
            intents.finish(session, row.id, intents.DONE, "its process died after publishing the whole output; "
                           "valueloop doctor completed the job")
        return f"complete batch job {job.id}: its output is whole"
    if repair:
        output.roll_back(staging)
        _end(session, job, "failed", "its process died while publishing the output; run it again with --resume", actor)
        intents.finish(session, row.id, intents.ORPHANED, "its process died before the output was published; "
                       "valueloop doctor rolled the publish back")
    return f"roll the publish back; batch job {job.id} fails and resumes with --resume"

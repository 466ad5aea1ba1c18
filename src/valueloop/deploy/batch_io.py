"""Where batch scoring reads from and writes to, as one text each (``--input``, ``--output``).

Inputs::

    USECASE@N | USECASE@latest     a committed dataset version of the use case (Delta); a file
                                   whose name holds @ is named with its folder, ./FILE
    PATH.parquet | DIR             Parquet file, or a directory of Parquet files
    PATH.csv                       CSV file (header row)
    delta:PATH | DIR/_delta_log    a Delta table (newest version)
    sql:URL::QUERY                 a SQLAlchemy URL and a query, materialized once to Parquet

Outputs: ``PATH.parquet`` (a Parquet dataset: a directory of part files, read whole by pyarrow,
pandas, Polars, DuckDB and Spark), ``PATH.csv``, or a Delta table as ``delta:PATH`` or ``PATH.delta``.

Every PATH may be an ``s3://bucket/key`` URL (:mod:`valueloop.storage`). An output there is staged
on local disk and published as one object (one Parquet or CSV file, seen whole or not at all) or
one Delta commit.

Every input has a fingerprint (its files' names, sizes and modification times; a Delta table's
version; a SQL result's content digest) so a resumed job can prove it reads the same rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valueloop.errors import Conflict, InvalidInput
from valueloop.storage import Location
from valueloop.store.intents import crash_point

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads
    from sqlalchemy.orm import Session

    from valueloop.config import Settings

INPUT_FORMS = ("USECASE@N, USECASE@latest, a .parquet/.csv file, a Parquet directory, delta:PATH or "
               "sql:URL::QUERY (a PATH may be s3://BUCKET/KEY)")
OUTPUT_FORMS = "PATH.parquet, PATH.csv, PATH.delta or delta:PATH (a PATH may be s3://BUCKET/KEY)"


@dataclass
class BatchInput:
    text: str
    dataset: pads.Dataset
    fingerprint: str
    num_rows: int


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _files_fingerprint(dataset: pads.FileSystemDataset) -> str:
    infos = dataset.filesystem.get_file_info(sorted(dataset.files))
    return _digest("files", [(i.path, i.size, i.mtime_ns) for i in infos])


def _delta(where: Location, version: int | None, text: str) -> BatchInput:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from valueloop.data.delta import arrow_dataset

    try:
        table = DeltaTable(where.uri, version=version, storage_options=where.storage_options())
    except TableNotFoundError:
        raise InvalidInput(f"--input {text!r}: no Delta table at {where}") from None
    dataset = arrow_dataset(table, where)
    return BatchInput(text, dataset, _digest("delta", table.table_uri, table.version()),
                      dataset.count_rows())


def _dataset_version(session: Session, usecase: str, text: str) -> BatchInput:
    from valueloop.data import get_version
    from valueloop.refs import DatasetRef

    ref = DatasetRef.parse(text, "--input")
    if ref.usecase != usecase:
        raise InvalidInput(f"--input {text!r}: scores use case '{usecase}' on another use case's "
                           f"data ('{ref.usecase}'); its DPIA covers only its own datasets")
    version = get_version(session, usecase, ref.version)
    return _delta(Location.parse(version.uri, "dataset"), version.version, text)


def _sql(settings: Settings, text: str) -> BatchInput:
    """Run the query once into a Parquet file, so parts are row ranges of a fixed result."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq
    from sqlalchemy import create_engine, text as sql_text
    from sqlalchemy.exc import SQLAlchemyError

    url, sep, query = text.removeprefix("sql:").partition("::")
    if not sep or not url or not query.strip():
        raise InvalidInput(f"--input {text!r}: expected sql:URL::QUERY")
    url = os.path.expandvars(url)
    target = settings.home / "batch" / "sql" / f"{_digest(url, query)[:16]}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    try:
        engine = create_engine(url)
        with engine.connect() as conn, pq.ParquetWriter(temporary, _sql_schema(conn, query)) as w:
            result = conn.execution_options(stream_results=True, yield_per=50_000).execute(sql_text(query))
            for rows in result.partitions():
                w.write_table(pa.Table.from_pylist([r._asdict() for r in rows], schema=w.schema))
    except SQLAlchemyError as exc:
        temporary.unlink(missing_ok=True)
        raise InvalidInput(f"--input {text!r}: the query failed: {exc.__class__.__name__}: "
                           f"{str(exc).splitlines()[0]}") from None
    os.replace(temporary, target)
    with open(target, "rb") as f:
        fingerprint = _digest("sql", hashlib.file_digest(f, "sha256").hexdigest())
    dataset = pads.dataset(target, format="parquet")
    return BatchInput(text, dataset, fingerprint, dataset.count_rows())


def _sql_schema(conn, query: str) -> pa.Schema:  # type: ignore[no-untyped-def]
    """The result's Arrow schema, inferred from its first rows (SQL drivers give no Arrow types)."""
    import pyarrow as pa
    from sqlalchemy import text as sql_text

    result = conn.execute(sql_text(query))
    head = [r._asdict() for r in result.fetchmany(1000)]
    result.close()
    if not head:
        return pa.schema([(k, pa.null()) for k in result.keys()])
    return pa.Table.from_pylist(head).schema


def input_location(text: str) -> Location | None:
    """The file or folder an input names (None for a dataset version or a query), so that an
    unsupported scheme is refused before anything else is looked at."""
    from valueloop.refs import names_a_version

    if text.startswith("sql:") or names_a_version(text):
        return None
    return Location.parse(text.removeprefix("delta:"), "--input")


def open_input(session: Session, settings: Settings, usecase: str, text: str, where: Location | None,
               csv_types: dict[str, str] | None = None) -> BatchInput:
    """The input named by ``text`` (at ``where``, its ``input_location``) as a lazily read Arrow
    dataset with its fingerprint; a CSV's columns named in ``csv_types`` are read as those Arrow
    types instead of guessed."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as pads

    if where is None:
        return _sql(settings, text) if text.startswith("sql:") else _dataset_version(session, usecase, text)
    if not where.exists():
        raise InvalidInput(f"--input {text!r}: no such file or directory; expected {INPUT_FORMS}")
    if text.startswith("delta:") or where.child("_delta_log").exists():
        return _delta(where, None, text)
    fmt = "csv" if where.uri.endswith(".csv") else "parquet"
    types = {name: pa.type_for_alias(alias) for name, alias in (csv_types or {}).items()}
    file_format = pads.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types=types)) \
        if fmt == "csv" else fmt
    try:
        dataset = pads.dataset(where.path, format=file_format, filesystem=where.filesystem)
        num_rows = dataset.count_rows()
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise InvalidInput(f"--input {text!r}: not readable as {fmt}: {exc}") from None
    if not dataset.files:
        raise InvalidInput(f"--input {text!r}: holds no {fmt} files")
    return BatchInput(text, dataset, _files_fingerprint(dataset), num_rows)


#: Bytes read from a Parquet file at a time: pages are decoded as the batches need them, so
#: memory follows the batch size instead of the writer's row groups (which may be huge).
READ_BUFFER = 1 << 20


def read_batches(dataset: pads.Dataset, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """The dataset's rows in order, ``batch_size`` at a time.

    Unpartitioned Parquet (files, directories, Delta tables) is streamed file by file, decoded
    on the caller's thread alone (batch scoring reads on a thread of its own, and Arrow's pool
    would add two more threads against the cores' scoring ones); other inputs go through the
    dataset scanner, which holds whole row groups.
    """
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    fragments = list(dataset.get_fragments()) if isinstance(dataset, pads.FileSystemDataset) else []
    streamable = bool(fragments) and isinstance(dataset.format, pads.ParquetFileFormat) and \
        all(str(f.partition_expression) == "true" for f in fragments)
    if not streamable:
        yield from dataset.to_batches(columns=columns, batch_size=batch_size, batch_readahead=4,
                                      fragment_readahead=1)
        return
    for fragment in fragments:
        with dataset.filesystem.open_input_file(fragment.path) as handle:
            reader = pq.ParquetFile(handle, buffer_size=READ_BUFFER, pre_buffer=False)
            yield from reader.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


def aligned_batches(
    batches: Iterator[pa.RecordBatch], part_rows: int
) -> Iterator[tuple[int, int, pa.RecordBatch]]:
    """(part, first row, batch) with each batch cut so it lies inside one part of ``part_rows``."""
    offset = 0
    for batch in batches:
        start = 0
        while start < batch.num_rows:
            part = (offset + start) // part_rows
            end = min(batch.num_rows, (part + 1) * part_rows - offset)
            yield part, offset + start, batch.slice(start, end - start)
            start = end
        offset += batch.num_rows


@dataclass(frozen=True)
class BatchOutput:
    text: str
    location: Location
    format: str  # parquet | csv | delta

    def exists(self) -> bool:
        return self.location.exists()

    def staging(self, home: Path, job_id: str) -> Path:
        """Where a job's parts wait: beside a local output (publishing is a rename), under the
        home for an output on the object store (publishing is an upload)."""
        if self.location.is_local:
            local = Path(self.location.path)
            return local.parent / f".{local.name}.valueloop-{job_id[:12]}"
        return home / "batch" / "staging" / job_id[:12]

    def publish(self, parts: list[Path], schema: pa.Schema, staging: Path, overwrite: bool) -> None:
        """Move the committed part files (in order) into place as one output, whole or not at all.

        Parquet: the staging directory itself becomes the output, a Parquet dataset of its parts
        (as Spark and Dask write it), in one rename. Delta: the parts become one new table
        version in one commit. CSV: the parts are written out as one file, then renamed. Nothing
        is decoded and written again except for CSV. On the object store, Parquet and CSV are
        one file uploaded as one object, and Delta one commit of deltalake's.
        """
        if self.exists() and not overwrite:
            raise Conflict(f"--output {self.text!r} exists; pass --overwrite to replace it")
        if not self.location.is_local:
            self._upload(parts, schema, staging)
            return
        path = Path(self.location.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == "delta":
            from deltalake import DeltaTable

            from valueloop.data.delta import commit

            # an output table's versions are its owner's, not valueloop's to roll back: all count
            head = [DeltaTable(str(path)).version()] if DeltaTable.is_deltatable(str(path)) else []
            commit(self.location, parts, schema, "overwrite" if self.exists() else "append", recorded=head)
            return
        if self.format == "csv":
            whole = _csv(parts, schema, staging)
        else:
            whole = staging.with_name(staging.name + ".out")
            whole.mkdir()
            for part in parts:
                os.replace(part, whole / part.name)
        replaced = self._replaced(staging)
        if self.exists():
            os.replace(path, replaced)
            crash_point("mid-batch-output-publish")
        os.replace(whole, path)
        if replaced.is_dir():
            shutil.rmtree(replaced)
        else:
            replaced.unlink(missing_ok=True)

    def identity(self) -> dict[str, int | None]:
        """What the output is before a publish, which any publish changes: the inode of its file or
        folder (a publish renames a new one into place), or its Delta table's newest version."""
        if not self.location.is_local:
            return {}  # an upload, or deltalake's commit: one request, whole or absent
        path = Path(self.location.path)
        if self.format == "delta":
            from deltalake import DeltaTable

            return {"head": DeltaTable(str(path)).version() if DeltaTable.is_deltatable(str(path)) else None}
        return {"inode": path.stat().st_ino if path.exists() else None}

    def published(self, before: dict[str, Any]) -> bool:
        """Whether a publish that began on the output ``before`` (its identity) got through; one to
        the object store is taken as not, and the job resumed publishes it again."""
        if not self.location.is_local:
            return False
        key = "head" if self.format == "delta" else "inode"
        now = self.identity()[key]
        return now is not None and now != before.get(key)

    def _replaced(self, staging: Path) -> Path:
        path = Path(self.location.path)
        return path.with_name(f".{path.name}.replaced-{staging.name}")

    def complete(self, staging: Path) -> None:
        """Remove what a published output's killed process left: the output it replaced, the staging."""
        replaced = self._replaced(staging)
        if replaced.is_dir():
            shutil.rmtree(replaced)
        replaced.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)

    def roll_back(self, staging: Path) -> None:
        """Undo a half publish: the replaced output back in its place, the moved parts back in the
        staging (whose manifest still lists them, so a resumed job does not score them again)."""
        replaced = self._replaced(staging)
        if replaced.exists() and not self.exists():
            os.replace(replaced, self.location.path)
        whole = staging.with_name(staging.name + ".out")
        if whole.is_dir():
            for part in whole.iterdir():
                os.replace(part, staging / part.name)
            whole.rmdir()
        (staging / "output.csv").unlink(missing_ok=True)

    def _upload(self, parts: list[Path], schema: pa.Schema, staging: Path) -> None:
        import pyarrow.dataset as pads
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq

        if self.format == "delta":
            from deltalake import write_deltalake

            write_deltalake(self.location.uri, pads.dataset([str(p) for p in parts], schema=schema).scanner().to_reader(),
                            mode="overwrite" if self.exists() else "append",
                            storage_options=self.location.storage_options())
            return
        if self.format == "csv":
            whole = _csv(parts, schema, staging)
        else:
            whole = staging / "output.parquet"
            with pq.ParquetWriter(whole, schema, compression="zstd") as writer:
                for part in parts:
                    for batch in pq.ParquetFile(part).iter_batches():
                        writer.write_batch(batch)
        # one object, completed by the upload's last request: readers see the old one or the new
        pafs.copy_files(str(whole), self.location.path, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.location.filesystem)


def _csv(parts: list[Path], schema: pa.Schema, staging: Path) -> Path:
    """The parts written out as one CSV file in ``staging``."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    whole = staging / "output.csv"
    with pacsv.CSVWriter(whole, schema) as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches():
                writer.write_batch(batch)
    return whole


def parse_output(text: str) -> BatchOutput:
    where = Location.parse(text.removeprefix("delta:"), "--output")
    if text.startswith("delta:"):
        return BatchOutput(text, where, "delta")
    formats = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".delta": "delta"}
    suffix = Path(where.path).suffix
    if suffix not in formats:
        raise InvalidInput(f"--output {text!r}: unknown format {suffix or '(no extension)'}; "
                           f"expected {OUTPUT_FORMS}")
    return BatchOutput(text, where, formats[suffix])

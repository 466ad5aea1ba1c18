"""Extraction: every source as one stream of Arrow record batches, fingerprinted as it streams.

Nothing here loads a source whole: CSV files are parsed a block at a time as they are consumed
(pyarrow's dataset scanner parsed ahead of a slower consumer without bound, so a pseudonymizing
ingest's memory grew with the file), Parquet files are scanned with ``pyarrow.dataset``, SQL
results come through a server-side cursor in chunks, Delta tables through their Arrow dataset.
The row count is counted on the stream; the content digest is the files' bytes (hashed beside
the stream, as DVC does) or, for SQL and Delta, the batches' Arrow buffers.

A use case file names the sources, so it must not reach further than its project: file paths
(and a SQLite database) resolve inside the project folder, and ``${VAR}`` in a URL reads only
the environment variables the setting ``url_variables`` allows, never valueloop's own.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from valueloop.errors import InvalidInput, NotInProject
from valueloop.outcomes.spec import CsvSource, DeltaSource, ParquetSource, Source, SqlSource
from valueloop.project import inside

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.csv as pacsv

SQL_CHUNK_ROWS = 50_000
_HASH_BLOCK = 1 << 22

#: called with the number of rows each batch adds, for progress bars
OnRows = Callable[[int], None]


def _hash_batch(digest: Any, batch: pa.RecordBatch) -> None:
    for column in batch.columns:
        for buffer in column.buffers():
            if buffer is not None:
                digest.update(buffer)


def _hash_files(files: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(root) if path.is_relative_to(root) else path}\0".encode())
        with path.open("rb") as handle:
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
    return digest.hexdigest()


class Stream:
    """One source being read once: its batches as a reader, its fingerprint when read."""

    def __init__(self, source: Source, schema: pa.Schema, batches: Iterator[pa.RecordBatch],
                 on_rows: OnRows | None, files_digest: Future[str] | None = None,
                 detail: dict[str, Any] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        import pyarrow as pa

        self.source = source
        self.rows = 0
        self.error: InvalidInput | None = None
        self._batches = batches
        self._on_rows = on_rows
        self._files_digest = files_digest
        self._digest = hashlib.sha256() if files_digest is None else None
        self._detail = detail or {}
        self._on_close = on_close
        self.reader = pa.RecordBatchReader.from_batches(schema, self._counted())

    def _counted(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self._batches:
                self.rows += batch.num_rows
                if self._digest is not None:
                    _hash_batch(self._digest, batch)
                if self._on_rows is not None:
                    self._on_rows(batch.num_rows)
                yield batch
        except InvalidInput as exc:
            self.error = exc
            raise
        except Exception as exc:  # noqa: BLE001 - the reader's own error, named by source
            self.error = InvalidInput(f"sources.{self.source.name}: cannot be read: {exc}")
            raise

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()

    def fingerprint(self) -> dict[str, Any]:
        digest = self._files_digest.result() if self._files_digest else self._digest.hexdigest()
        return {"kind": self.source.kind, "digest": digest, "rows": self.rows, **self._detail}


def _files(source: CsvSource | ParquetSource, project_dir: Path) -> list[Path]:
    """The files the path or glob matches, each resolved inside the project folder."""
    pattern = source.path if os.path.isabs(source.path) else str(project_dir / source.path)
    field = f"sources.{source.name}.path"
    matches = [inside(project_dir, p, field) for p in glob.glob(pattern, recursive=True)]
    files = sorted(p for p in matches if p.is_file())
    if not files:
        raise NotInProject(f"sources.{source.name}.path: no file matches {source.path!r} in {project_dir}")
    return files


def _open_csv(path: Path, column_types: pa.Schema | None = None) -> pacsv.CSVStreamingReader:
    """A block at a time, parsed in the consuming thread: memory stays a block, and a value that
    cannot be converted is named with its row number."""
    import pyarrow.csv as pacsv

    return pacsv.open_csv(path, read_options=pacsv.ReadOptions(use_threads=False),
                          convert_options=pacsv.ConvertOptions(column_types=column_types or {}))


def _csv_batches(source: CsvSource, files: list[Path],
                 first: pacsv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
    """The files' batches in order; the first file's column types hold for the others, as one
    table needs."""
    yield from first
    for path in files[1:]:
        reader = _open_csv(path, first.schema)
        if reader.schema.names != first.schema.names:
            raise InvalidInput(f"sources.{source.name}: {path} has the columns {', '.join(reader.schema.names)}; "
                               f"{files[0]} has {', '.join(first.schema.names)}")
        yield from reader


def _file_stream(source: CsvSource | ParquetSource, project_dir: Path, on_rows: OnRows | None,
                 hasher: ThreadPoolExecutor) -> Stream:
    import pyarrow as pa

    files = _files(source, project_dir)
    try:
        if isinstance(source, CsvSource):
            first = _open_csv(files[0])
            schema, batches = first.schema, _csv_batches(source, files, first)
        else:
            import pyarrow.dataset as ds  # imports pandas, a second on its own: not for a CSV

            dataset = ds.dataset([str(f) for f in files], format=source.kind)
            schema, batches = dataset.schema, dataset.scanner().to_batches()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"sources.{source.name}: {files[0]} is not valid {source.kind}: {exc}") from None
    digest = hasher.submit(_hash_files, files, project_dir)
    detail = {"files": [str(f.relative_to(project_dir)) if f.is_relative_to(project_dir) else str(f)
                        for f in files]}
    return Stream(source, schema, batches, on_rows, digest, detail)


def _delta_stream(source: DeltaSource, project_dir: Path, on_rows: OnRows | None) -> Stream:
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    from valueloop.data.delta import arrow_dataset
    from valueloop.storage import Location

    remote = "://" in source.path and not source.path.startswith("file://")
    uri = source.path if remote else str(inside(project_dir, source.path.removeprefix("file://"),
                                                f"sources.{source.name}.path"))
    try:
        table = DeltaTable(uri, version=source.version)
    except (DeltaError, OSError) as exc:
        raise InvalidInput(f"sources.{source.name}: no Delta table at {uri!r}: {exc}") from None
    dataset = arrow_dataset(table, Location.parse(uri, f"sources.{source.name}.path"))
    return Stream(source, dataset.schema, dataset.scanner().to_batches(), on_rows,
                  detail={"table_version": table.version()})


def _expand(source: SqlSource, allowed: tuple[str, ...]) -> str:
    """The URL with its ``${VAR}`` read from the environment, for the allowed variables only."""
    field = f"sources.{source.name}.url"
    template = Template(source.url)
    if not template.is_valid():
        raise InvalidInput(f"{field}: a $ that names no variable; write $$ for a $ of its own")
    for name in template.get_identifiers():
        if name.startswith("VALUELOOP_"):
            raise InvalidInput(f"{field}: ${{{name}}} is one of valueloop's own settings, which a URL "
                               "never expands")
        if name not in allowed:
            raise InvalidInput(f"{field}: ${{{name}}} is not among the variables the setting url_variables "
                               f"(VALUELOOP_URL_VARIABLES) allows: {', '.join(allowed) or 'none'}")
        if name not in os.environ:
            raise InvalidInput(f"{field}: environment variable {name} is not set")
    return template.substitute({name: os.environ[name] for name in template.get_identifiers()})


def _sql_url(source: SqlSource, allowed: tuple[str, ...], project_dir: Path) -> Any:
    """The parsed URL; a SQLite database is a file, so it resolves inside the project folder."""
    from sqlalchemy.engine import make_url

    url = make_url(_expand(source, allowed))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = url.database.removeprefix("file:").partition("?")[0]
        resolved = inside(project_dir, path, f"sources.{source.name}.url")
        if not url.database.startswith("file:"):
            url = url.set(database=str(resolved))
    return url


def _sql_stream(source: SqlSource, allowed: tuple[str, ...], project_dir: Path,
                on_rows: OnRows | None) -> Stream:
    """Rows through a server-side cursor, ``SQL_CHUNK_ROWS`` at a time; the first chunk fixes the types."""
    import pyarrow as pa
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    try:
        engine = create_engine(_sql_url(source, allowed, project_dir))
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise InvalidInput(f"sources.{source.name}.url: not a usable SQLAlchemy URL: {exc}") from None
    where = engine.url.render_as_string(hide_password=True)
    try:
        connection = engine.connect()
    except DBAPIError as exc:
        engine.dispose()
        raise InvalidInput(
            f"sources.{source.name}: cannot reach the database {where}: {exc.orig}".strip()
        ) from None
    try:
        result = connection.execution_options(stream_results=True, yield_per=SQL_CHUNK_ROWS).execute(
            text(source.query)
        )
        names = list(result.keys())
        chunks = result.partitions(SQL_CHUNK_ROWS)
        first = next(chunks, [])
    except DBAPIError as exc:
        connection.close()
        engine.dispose()
        raise InvalidInput(f"sources.{source.name}.query: the database refused it: {exc.orig}") from None

    def columns(rows: list[Any]) -> list[list[Any]]:
        return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in names]

    head = pa.RecordBatch.from_arrays([pa.array(c) for c in columns(first)], names=names)
    schema = head.schema

    def batches() -> Iterator[pa.RecordBatch]:
        if first:
            yield head
        for rows in chunks:
            arrays = []
            for field, values in zip(schema, columns(rows), strict=True):
                try:
                    arrays.append(pa.array(values, type=field.type))
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    raise InvalidInput(
                        f"sources.{source.name}: column {field.name} changes type after the "
                        f"first {SQL_CHUNK_ROWS} rows (was {field.type}); CAST it in the query"
                    ) from None
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    def close() -> None:
        connection.close()
        engine.dispose()

    return Stream(source, schema, batches(), on_rows, detail={"database": where}, on_close=close)


def open_stream(source: Source, project_dir: Path, url_variables: tuple[str, ...],
                on_rows: OnRows | None, hasher: ThreadPoolExecutor) -> Stream:
    """Open a source for one streaming read; bad paths, URLs and queries fail here, by name."""
    if isinstance(source, CsvSource | ParquetSource):
        return _file_stream(source, project_dir, on_rows, hasher)
    if isinstance(source, DeltaSource):
        return _delta_stream(source, project_dir, on_rows)
    return _sql_stream(source, url_variables, project_dir, on_rows)

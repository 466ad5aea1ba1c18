"""Extract, treat and transform in one streaming pass, written once to a staged Parquet file.

Two DuckDB connections share the pass, so that the use case's SQL never meets the key or a raw
value: a private one gives each source's stream its DPIA treatments (the key reaches it as query
parameters), and the sandbox runs the transform over the treated streams, registered by the
sources' names. DuckDB pulls the batches through both, so memory holds a few batches and
DuckDB's buffers, never a whole source. The result's batches are written to the staged file and,
as they are, aggregated for the checks and the profile (``Tally``), which then need not read
the file back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from valueloop import hooks
from valueloop.config import Settings
from valueloop.data import serving
from valueloop.data import treatments as treat
from valueloop.data.ahead import read_ahead, shared
from valueloop.data.sandbox import connect, literal, one_select, sandbox
from valueloop.data.sources import OnRows, Stream, open_stream
from valueloop.errors import InvalidInput, NotInProject
from valueloop.outcomes.spec import ColumnTreatment, DataSection, Source
from valueloop.project import inside

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

#: rows per batch of a treated stream, as the sandbox reads it
TREATED_BATCH_ROWS = 65_536
#: rows per row group of the staged file (DuckDB's own Parquet writer's default)
ROW_GROUP_ROWS = 122_880


@dataclass(frozen=True)
class Tally:
    """Aggregates of the transform's result, taken as it was written: by expression, over a
    table of the columns' DuckDB ``types`` as DuckDB read the result's batches."""

    types: dict[str, str]
    values: dict[str, Any]

    def of(self, types: dict[str, str], wanted: list[str]) -> list[Any] | None:
        """The values of ``wanted`` over a table of ``types``, or None if they were not taken on
        the same types."""
        if types != self.types or not set(wanted) <= self.values.keys():
            return None
        return [self.values[e] for e in wanted]


@dataclass(frozen=True)
class Staged:
    """The treated, transformed dataset on disk, not yet checked or committed."""

    files: list[Path]
    schema: pa.Schema
    rows: int
    fingerprints: dict[str, Any]
    transform_hash: str
    treatments: dict[str, Any]
    #: what serving needs to treat a raw record the same way (data/serving.py)
    serving: dict[str, Any]
    #: the aggregates asked for, taken over the rows as they were written; None if they could not be
    tally: Tally | None = None


def _sql_transform(section: DataSection, project_dir: Path) -> tuple[str, str]:
    path = inside(project_dir, str(section.transform), "data.transform")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotInProject(f"data.transform: no file {section.transform!r} in {project_dir}") from None
    except OSError as exc:
        raise InvalidInput(f"data.transform: {section.transform} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"data.transform: {section.transform} is not UTF-8 text") from None
    return one_select(text, f"data.transform {section.transform}"), hashlib.sha256(text.encode()).hexdigest()


def _python_transform(section: DataSection, project_dir: Path, settings: Settings,
                      readers: dict[str, pa.RecordBatchReader]) -> tuple[Any, str]:
    """The result of the function ``module:function`` names, given the treated sources, and
    the hash of its module's file with the function's name."""
    function, path = hooks.resolve(str(section.python), "data.python", settings.hook_modules, project_dir)
    digest = hashlib.sha256((path.read_bytes() if path else b"")
                            + str(section.python).partition(":")[2].encode()).hexdigest()
    try:
        return function(readers), digest
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's function failed; say which and why
        raise InvalidInput(f"data.python: {section.python} failed: {type(exc).__name__}: {exc}") from None


def _query(user: duckdb.DuckDBPyConnection, section: DataSection, sources: list[Source],
           project_dir: Path, settings: Settings,
           readers: dict[str, pa.RecordBatchReader]) -> tuple[str, str]:
    """The transform's query, for the sandbox, and the hash of its text, which the lineage keeps."""
    if section.transform:
        return _sql_transform(section, project_dir)
    if section.python:
        result, digest = _python_transform(section, project_dir, settings, readers)
        user.register("__transformed", result)
        return "SELECT * FROM __transformed", digest
    if len(sources) != 1:
        raise InvalidInput(
            f"data.transform: {len(sources)} sources ({', '.join(s.name for s in sources)}) need a "
            "transform that combines them into one table"
        )
    query = f"SELECT * FROM {treat.quote(sources[0].name)}"
    return query, hashlib.sha256(query.encode()).hexdigest()


@contextmanager
def _treated(streams: list[Stream], treatments: dict[str, ColumnTreatment], key: str, work: Path,
             erased: dict[str, dict[str, list[str]]]) -> Iterator[dict[str, pa.RecordBatchReader]]:
    """Each source's stream with its treatments, by source name, from a private DuckDB: one
    cursor per stream, since each keeps its result open while the transform reads them all.
    The source is parsed, and treated, each in a thread of its own ahead of the transform, so
    that the stages run on every core instead of one after another on one.
    The rows of erased subjects (``erased``: column to tokens) are left out."""
    with connect(work) as private, ExitStack() as cursors:
        readers = {}
        for stream in streams:
            name = stream.source.name
            kept, left_out = treat.erased_filter(stream.reader.schema, treatments, erased)
            query, params = treat.treating_query(stream.reader.schema, treatments, key, name, "raw", kept)
            params = {**params, **left_out}
            cursor = cursors.enter_context(private.cursor())
            cursor.register("raw", cursors.enter_context(read_ahead(stream.reader, f"read-{name}")))
            treated = cursor.sql(query, params=params or None).to_arrow_reader(TREATED_BATCH_ROWS)
            readers[name] = cursors.enter_context(read_ahead(treated, f"treat-{name}"))
        yield readers


def _as_is(user: duckdb.DuckDBPyConnection, section: DataSection,
           readers: dict[str, pa.RecordBatchReader]) -> pa.RecordBatchReader | None:
    """The one source's treated stream itself if there is no transform and the sandbox's
    ``SELECT *`` would give back the same types: that pass only copied every value (2M rows of
    the ingest benchmark: 0.33 CPU s). Else None."""
    if section.transform or section.python or len(readers) != 1:
        return None
    (reader,) = readers.values()
    user.register("__as_is", reader.schema.empty_table())
    try:
        passed = user.sql("SELECT * FROM __as_is").to_arrow_table().schema
    finally:
        user.unregister("__as_is")
    return reader if passed.equals(reader.schema, check_metadata=True) else None


def _tallying(work: Path,
              aggregates: Callable[[dict[str, str]], list[str]]) -> Callable[[pa.RecordBatchReader], Tally]:
    """A tally of the ``aggregates`` (given the columns' types) of a stream of the result: the
    same SQL over the same rows as a scan of the staged file, without reading the file back
    (10M rows of the ingest benchmark: 45 against 50 CPU s). In a DuckDB of its own on one
    thread, as the stream comes one batch at a time."""
    def tally(result: pa.RecordBatchReader) -> Tally:
        with connect(work) as con:
            con.execute("SET threads = 1")
            con.register("__staged", result.schema.empty_table())
            types = {name: kind for name, kind, *_ in con.execute("DESCRIBE __staged").fetchall()}
            wanted = list(dict.fromkeys(aggregates(types)))
            con.register("__staged", result)
            values = con.execute(f"SELECT {', '.join(wanted)} FROM __staged").fetchone() if wanted else ()
        return Tally(types, dict(zip(wanted, values, strict=True)))
    return tally


def _write(result: pa.RecordBatchReader, out: Path) -> None:
    """The transform's result as one Parquet file in the result's order, by pyarrow's writer:
    DuckDB's COPY took twice the CPU (2M rows of the ingest benchmark: 6.7 against 3.4 CPU s).
    Batches are gathered into row groups of ``ROW_GROUP_ROWS``: DuckDB hands out smaller ones
    (about 48,000 rows), and the checks' scan held more memory over a file of those (10M rows:
    RSS 641 against 317 MiB after it). The pool's freed memory goes back before the checks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetWriter(out, result.schema) as writer:
        held: list[pa.RecordBatch] = []
        for batch in result:
            held.append(batch)
            if sum(b.num_rows for b in held) >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(held), ROW_GROUP_ROWS)
                held = []
        if held:
            writer.write_table(pa.Table.from_batches(held), ROW_GROUP_ROWS)
    pa.default_memory_pool().release_unused()


def _raise_for(exc: Exception, streams: list[Stream], where: str) -> NoReturn:
    for stream in streams:
        if stream.error is not None:
            raise stream.error from None
    raise InvalidInput(f"{where}: {exc}") from None


def stage(settings: Settings, sources: list[Source], section: DataSection, project_dir: Path,
          treatments: dict[str, ColumnTreatment], personal: list[str], work: Path,
          on_rows: OnRows | None = None, erased: dict[str, dict[str, list[str]]] | None = None,
          aggregates: Callable[[dict[str, str]], list[str]] | None = None) -> Staged:
    """Stream, treat and transform the sources into a Parquet file in ``work``.

    One file, written in the order of the transform's result (DuckDB keeps the source order in
    it), so that a version does not depend on how threads happened to interleave. The sandbox
    writes nothing: the file is written here, from the result's batches. ``aggregates`` (the
    SQL aggregates wanted, given the columns' types) are taken over the batches as they are
    written, in a thread of their own; if that fails, the tally is None and the caller scans
    the file, which raises the same failure where it did before."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not sources:
        raise InvalidInput("sources: the use case declares no source to ingest")
    out = work / "part-0.parquet"
    with ThreadPoolExecutor(1, thread_name_prefix="fingerprint") as hasher, ExitStack() as closing:
        streams = []
        for source in sources:
            stream = open_stream(source, project_dir, settings.url_variables, on_rows, hasher)
            closing.callback(stream.close)
            streams.append(stream)
        schemas = {s.source.name: s.reader.schema for s in streams}
        treat.check_coverage(treatments, personal, schemas)
        where = f"data.transform {section.transform}" if section.transform else "data"
        try:  # DuckDB may read a source to its end, and fail, as soon as its stream is opened
            readers = closing.enter_context(_treated(streams, treatments, settings.pseudonym_key, work, erased or {}))
            user = closing.enter_context(sandbox(work, []))
            for name, reader in readers.items():
                user.register(name, reader)
            query, transform_hash = _query(user, section, sources, project_dir, settings, readers)
            user.execute(f"DESCRIBE {query}").fetchall()  # bound alone first: a relation's errors do not name the line
            tallied = None
            with ExitStack() as writing:
                result = _as_is(user, section, readers) or writing.enter_context(
                    read_ahead(user.sql(query).to_arrow_reader(ROW_GROUP_ROWS), "transform"))
                if aggregates is not None:
                    result, tallied = writing.enter_context(
                        shared(result, "tally", _tallying(work, aggregates), depth=1))  # a batch more held is RSS
                _write(result, out)
            tally = tallied.result() if tallied is not None and tallied.exception() is None else None
            transform = (serving.row_level(query, list(schemas)) if not section.python else
                         {"not_row_level": f"it is Python ({section.python}), which cannot be read for its rows"})
        except (duckdb.Error, pa.ArrowException) as exc:
            _raise_for(exc, streams, where)
        fingerprints = {s.source.name: s.fingerprint() for s in streams}
    return Staged(
        files=[out],
        schema=pq.read_schema(out),
        rows=pq.read_metadata(out).num_rows,
        fingerprints=fingerprints,
        transform_hash=transform_hash,
        treatments=treat.applied(treatments, schemas, settings.pseudonym_key),
        serving=serving.record(schemas, transform),
        tally=tally,
    )


def register_dataset(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    """The staged files as the view ``dataset``, which the checks and the profile read."""
    listed = ", ".join(literal(f) for f in files)
    con.execute(f"CREATE OR REPLACE TEMP VIEW dataset AS SELECT * FROM read_parquet([{listed}])")

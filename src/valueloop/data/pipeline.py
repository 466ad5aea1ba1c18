"""Extract, treat and transform in one DuckDB query, written once to staged Parquet files.

Each source's stream is registered by a private name; a view under the source's own name gives
its columns their DPIA treatments; the transform selects from those views. DuckDB pulls the
batches through, so memory holds a few batches and DuckDB's buffers, never a whole source.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from valueloop.data import treatments as treat
from valueloop.data.sources import OnRows, Stream, open_stream
from valueloop.errors import InvalidInput
from valueloop.outcomes.spec import ColumnTreatment, DataSection, Source

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

@dataclass(frozen=True)
class Staged:
    """The treated, transformed dataset on disk, not yet checked or committed."""

    files: list[Path]
    schema: pa.Schema
    rows: int
    fingerprints: dict[str, Any]
    transform_hash: str
    treatments: dict[str, Any]


#: DuckDB's buffer pool: beyond it, aggregates spill to the work directory, so the memory an
#: ingest takes does not grow with the data (unbounded, DuckDB keeps what it read cached; at
#: 2 GB a unique check's hash table still grew with the rows: peak RSS 570 MiB at 10 M rows and
#: 599 at 20 M with this limit, as fast)
MEMORY_LIMIT = "512MB"


@contextmanager
def connect(work: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with bounded memory that spills to the work directory, not to the
    current one, and prints no progress bar of its own."""
    import duckdb

    con = duckdb.connect(config={"temp_directory": str(work / "spill"), "memory_limit": MEMORY_LIMIT})
    con.execute("SET enable_progress_bar = false")
    try:
        yield con
    finally:
        con.close()


def _sql_transform(section: DataSection, project_dir: Path) -> tuple[str, str]:
    path = project_dir / str(section.transform)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidInput(f"data.transform: no file {section.transform!r} in {project_dir}") from None
    except OSError as exc:
        raise InvalidInput(f"data.transform: {path} cannot be read ({exc.strerror})") from None
    query = text.strip().rstrip(";").strip()
    if not query:
        raise InvalidInput(f"data.transform: {path} is empty; it must hold one SELECT query")
    return query, hashlib.sha256(text.encode()).hexdigest()


def _python_transform(section: DataSection, project_dir: Path) -> tuple[Callable[..., Any], str]:
    """The function ``module:function`` names: a module file of the project, loaded afresh (an
    edited file must not be served from the import cache), or an installed module."""
    module_name, _, function_name = str(section.python).partition(":")
    path = project_dir / (module_name.replace(".", "/") + ".py")
    try:
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"valueloop_transform_{module_name}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure means the same to the user
        raise InvalidInput(f"data.python: cannot load {module_name!r} from {project_dir}: "
                           f"{type(exc).__name__}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InvalidInput(f"data.python: {module_name} has no function {function_name!r}")
    digest = hashlib.sha256(Path(str(module.__file__)).read_bytes() + function_name.encode()).hexdigest()
    return function, digest


def _query(con: duckdb.DuckDBPyConnection, section: DataSection, sources: list[Source],
           project_dir: Path) -> tuple[str, str]:
    """The transform's query and the hash of its text, which the lineage keeps."""
    if section.transform:
        return _sql_transform(section, project_dir)
    if section.python:
        function, digest = _python_transform(section, project_dir)
        readers = {s.name: con.sql(f"SELECT * FROM {treat.quote(s.name)}").to_arrow_reader()
                   for s in sources}
        try:
            result = function(readers)
        except InvalidInput:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's function failed; say which and why
            raise InvalidInput(f"data.python: {section.python} failed: {type(exc).__name__}: {exc}") from None
        con.register("__transformed", result)
        return "SELECT * FROM __transformed", digest
    if len(sources) != 1:
        raise InvalidInput(
            f"data.transform: {len(sources)} sources ({', '.join(s.name for s in sources)}) need a "
            "transform that combines them into one table"
        )
    query = f"SELECT * FROM {treat.quote(sources[0].name)}"
    return query, hashlib.sha256(query.encode()).hexdigest()


def _raise_for(exc: Exception, streams: list[Stream], where: str) -> NoReturn:
    for stream in streams:
        if stream.error is not None:
            raise stream.error from None
    raise InvalidInput(f"{where}: {exc}") from None


def stage(con: duckdb.DuckDBPyConnection, sources: list[Source], section: DataSection,
          project_dir: Path, treatments: dict[str, ColumnTreatment], personal: list[str],
          key: str, out: Path, on_rows: OnRows | None = None) -> Staged:
    """Stream, treat and transform the sources into a Parquet file under ``out``.

    One file, because DuckDB keeps the rows in source order only when it writes a single file,
    and a version should not depend on how threads happened to interleave."""
    import duckdb
    import pyarrow.parquet as pq

    if not sources:
        raise InvalidInput("sources: the use case declares no source to ingest")
    with ThreadPoolExecutor(1, thread_name_prefix="fingerprint") as hasher, ExitStack() as closing:
        streams = []
        for source in sources:
            stream = open_stream(source, project_dir, on_rows, hasher)
            closing.callback(stream.close)
            streams.append(stream)
        schemas = {s.source.name: s.reader.schema for s in streams}
        treat.check_coverage(treatments, personal, schemas)
        for stream in streams:
            name = stream.source.name
            items = treat.select_list(stream.reader.schema, treatments, key, name)
            con.register(f"__source_{name}", stream.reader)
            con.execute(f"CREATE TEMP VIEW {treat.quote(name)} AS SELECT {', '.join(items)} "
                        f"FROM {treat.quote('__source_' + name)}")
        query, transform_hash = _query(con, section, sources, project_dir)
        where = f"data.transform {section.transform}" if section.transform else "data"
        try:
            con.execute(f"COPY ({query}\n) TO '{out / 'part-0.parquet'}' (FORMAT parquet)")
        except duckdb.Error as exc:
            _raise_for(exc, streams, where)
        fingerprints = {s.source.name: s.fingerprint() for s in streams}
    files = sorted(out.glob("*.parquet"))
    return Staged(
        files=files,
        schema=pq.read_schema(files[0]),
        rows=sum(pq.read_metadata(f).num_rows for f in files),
        fingerprints=fingerprints,
        transform_hash=transform_hash,
        treatments=treat.applied(treatments, schemas),
    )


def register_dataset(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    """The staged files as the view ``dataset``, which the checks and the profile read."""
    listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE OR REPLACE TEMP VIEW dataset AS SELECT * FROM read_parquet([{listed}])")

"""The Data phase's DuckDB connections: valueloop's own, and the sandbox that runs user SQL.

User SQL (a transform, a ``sql`` quality check) comes from a use case file, which anyone who may
edit the use case can write. It runs in a DuckDB of its own that reads and writes only the files
valueloop names, reaches no network, loads no extension and cannot change that, since its
configuration is locked. It sees the sources already treated and the staged dataset, never the
pseudonym key (which lives in another connection) nor a raw file.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb

#: DuckDB's buffer pool: beyond it, aggregates spill to the work directory, so the memory an
#: ingest takes does not grow with the data (unbounded, DuckDB keeps what it read cached; at
#: 2 GB a unique check's hash table still grew with the rows: peak RSS 570 MiB at 10 M rows and
#: 599 at 20 M with this limit, as fast)
MEMORY_LIMIT = "512MB"


def open_connection(work: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with bounded memory that spills to a folder of its own in the work
    directory (not to the current one), and prints no progress bar of its own."""
    import duckdb

    spill = work / f"spill-{uuid.uuid4().hex[:8]}"
    con = duckdb.connect(config={"temp_directory": str(spill), "memory_limit": MEMORY_LIMIT})
    con.execute("SET enable_progress_bar = false")
    return con


def lock_down(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> duckdb.DuckDBPyConnection:
    """``con`` made a sandbox for user SQL: it may touch only ``paths``, and its configuration is
    locked so no query can open it up again."""
    con.execute("SET allowed_paths = $paths", {"paths": [str(p) for p in paths]})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


@contextmanager
def connect(work: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`open_connection`, closed when the block ends."""
    con = open_connection(work)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def sandbox(work: Path, paths: list[Path]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB for user SQL that may touch only ``paths`` (still spilling to the work directory)."""
    with connect(work) as con:
        yield lock_down(con, paths)


def literal(path: Path) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def one_select(query: str, where: str) -> str:
    """``query`` if it is one SELECT statement, without a closing semicolon. valueloop wraps it
    in statements of its own; a second statement smuggled in would run outside them."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    kinds = [s.type.name for s in statements]
    if kinds != ["SELECT"]:
        raise InvalidInput(f"{where}: must be one SELECT query; found {len(kinds)} statement(s): "
                           f"{', '.join(kinds) or 'none'}")
    return statements[0].query.strip().rstrip(";").strip()

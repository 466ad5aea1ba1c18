"""Dataset versions as Delta Lake table versions, committed whole or not at all.

The staged Parquet files, already checked, are moved into the table directory and added in one
Delta transaction (deltalake's ``create_write_transaction``): readers see the new version whole
or not at all, and the files are written once instead of being read back and written again.
The tables live under ``artifact_root``: a local folder, or an s3:// prefix reached through
deltalake's own object store (and pyarrow's for the files), with the options of :mod:`valueloop.storage`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from valueloop.config import Settings
from valueloop.errors import Conflict
from valueloop.storage import Location

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads
    from deltalake import DeltaTable


def datasets_root(settings: Settings) -> Location:
    """Where the tables live: under ``artifact_root``, a local folder or an s3:// prefix."""
    return Location.parse(settings.artifact_root or str(settings.home), "artifact_root").child("datasets")


def table_path(settings: Settings, usecase: str) -> Location:
    return datasets_root(settings).child(usecase)


def staging_root(settings: Settings) -> Path:
    """Where ingests stage their files, always on local disk: beside local tables (so moving files
    in is a rename), under the home for tables on the object store (moving in is an upload)."""
    root = datasets_root(settings)
    return Path(root.path) / ".staging" if root.is_local else settings.home / "staging" / "datasets"


def open_table(table: Location, version: int | None = None) -> DeltaTable | None:
    """The Delta table at ``table`` through deltalake's own object store (None if there is none)."""
    from deltalake import DeltaTable

    options = table.storage_options()
    if not DeltaTable.is_deltatable(table.uri, storage_options=options):
        return None
    return DeltaTable(table.uri, version=version, storage_options=options)


def arrow_dataset(table: DeltaTable, where: Location) -> pads.Dataset:
    """A version of the table as a pyarrow dataset over pyarrow's own filesystem. Through
    deltalake's (its Rust object store behind a Python filesystem) most processes that read one
    aborted at exit: "terminate called without an active exception" (delta-rs#2184)."""
    import pyarrow.fs as pafs

    return table.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(where.path, where.filesystem))


#: the file in a staging folder naming the process working in it, "host pid"
OWNER = "owner"


@contextmanager
def staging(settings: Settings) -> Iterator[Path]:
    """A private local work directory for one ingest, always removed."""
    work = staging_root(settings) / uuid.uuid4().hex
    work.mkdir(parents=True)
    (work / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}")
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def nullable(schema: pa.Schema) -> pa.Schema:
    """Delta columns are nullable: a later version may hold nulls where this one has none."""
    import pyarrow as pa

    return pa.schema([field.with_nullable(True) for field in schema])


def _fields(schema: object) -> dict[str, str]:
    return {f["name"]: f["type"] if isinstance(f["type"], str) else json.dumps(f["type"])
            for f in json.loads(schema.to_json())["fields"]}  # type: ignore[attr-defined]


def check_schema(table: Location, schema: pa.Schema) -> None:
    """Refuse a schema that differs from the table's current one, naming every difference."""
    from deltalake import Schema

    current = open_table(table)
    if current is None:
        return
    before, after = _fields(current.schema()), _fields(Schema.from_arrow(nullable(schema)))
    if before == after:
        return
    problems = [f"column {c}: new, {after[c]}" for c in after if c not in before]
    problems += [f"column {c}: missing, was {before[c]}" for c in before if c not in after]
    problems += [f"column {c}: {after[c]}, was {before[c]}" for c in after if c in before and after[c] != before[c]]
    if not problems:
        problems = [f"column order: {', '.join(after)}, was {', '.join(before)}"]
    raise Conflict(
        f"the dataset's schema conflicts with version {current.version()} of {table}; change the "
        "transform to keep it, or start a new use case cycle with a new dataset",
        problems=problems,
    )


def files_at(table: Location, version: int | None) -> list[Location]:
    """The data files of a version of the table (none for None, or before the first)."""
    if version is None or (at := open_table(table, version)) is None:
        return []
    return _files(at)


def _files(at: DeltaTable) -> list[Location]:
    return [Location.parse(uri, "dataset file") for uri in at.file_uris()]


def local_files(files: list[Location], work: Path) -> list[Path]:
    """``files`` as local paths DuckDB reads: those on the object store downloaded into ``work``."""
    import pyarrow.fs as pafs

    local = []
    for f in files:
        if f.is_local:
            local.append(Path(f.path))
            continue
        copy = work / "previous" / f.name
        copy.parent.mkdir(exist_ok=True)
        pafs.copy_files(f.path, str(copy), source_filesystem=f.filesystem, destination_filesystem=pafs.LocalFileSystem())
        local.append(copy)
    return local


def unrecorded(table: Location, recorded: list[int]) -> list[int]:
    """The versions after the last recorded one, when the table's newest differs from it: versions
    committed by a process that died before writing their row. Never to be read or built on."""
    if (current := open_table(table)) is None:
        return []
    head, last = current.version(), max(recorded, default=-1)
    if head == last or (last >= 0 and set(files_at(table, head)) == set(files_at(table, last))):
        return []
    return list(range(last + 1, head + 1))


def roll_back(table: Location, recorded: list[int]) -> None:
    """Make the table's newest version hold the last recorded one's files again (a Delta restore,
    itself a new version), or remove the table when no version of it was recorded."""
    if not recorded:
        table.delete()
        return
    open_table(table).restore(max(recorded))  # type: ignore[union-attr]


def unreferenced(table: Location, recorded: list[int]) -> list[Location]:
    """Data files in the table's folder that no recorded version holds: moved in or committed by a
    process that died before writing the version's row."""
    import pyarrow.fs as pafs

    listed = table.filesystem.get_file_info(pafs.FileSelector(table.path, allow_not_found=True))
    kept: set[Location] = set()
    at = open_table(table, min(recorded)) if recorded else None
    for version in sorted(recorded) if at is not None else []:
        at.load_as_version(version)  # onward from the version before: its log is read once, not once per version
        kept.update(_files(at))
    found = (table.child(i.base_name) for i in listed
             if i.type == pafs.FileType.File and i.base_name.startswith("part-") and i.base_name.endswith(".parquet"))
    return sorted((f for f in found if f not in kept), key=str)


def commit(table: Location, files: list[Path], schema: pa.Schema, mode: str, recorded: list[int]) -> int:
    """Move the staged files into the table (a rename on local disk, an upload to the object
    store) and commit them as one new version; return it.

    The new version builds on the last ``recorded`` version: versions committed after it without
    a row are rolled back first, so that an append never adds to rows nobody recorded."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from deltalake import Schema
    from deltalake.transaction import AddAction, create_table_with_add_actions

    if unrecorded(table, recorded):
        roll_back(table, recorded)
    created = not table.exists()
    if table.is_local:
        Path(table.path).mkdir(parents=True, exist_ok=True)
    actions, moved = [], []
    try:
        for staged in files:
            target = table.child(f"part-{uuid.uuid4()}.parquet")
            rows, stat = pq.read_metadata(staged).num_rows, staged.stat()
            if table.is_local:
                os.replace(staged, target.path)
            else:
                pafs.copy_files(str(staged), target.path, source_filesystem=pafs.LocalFileSystem(),
                                destination_filesystem=table.filesystem)
            moved.append(target)
            actions.append(AddAction(target.name, stat.st_size, {}, int(stat.st_mtime * 1000), True,
                                     json.dumps({"numRecords": rows})))
        delta_schema = Schema.from_arrow(nullable(schema))
        if (current := open_table(table)) is not None:
            current.create_write_transaction(actions, mode=mode, schema=delta_schema)
        else:
            create_table_with_add_actions(table.uri, delta_schema, actions, mode="error",
                                          storage_options=table.storage_options())
    except BaseException:
        for target in moved:
            target.delete()
        if created:
            table.delete()
        raise
    return open_table(table).version()  # type: ignore[union-attr]


def read(uri: str, version: int) -> pa.Table:
    where = Location.parse(uri, "dataset uri")
    return arrow_dataset(open_table(where, version), where).to_table()  # type: ignore[arg-type]

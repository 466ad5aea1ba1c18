"""Dataset versions as Delta Lake table versions, committed whole or not at all.

The staged Parquet files, already checked, are moved into the table directory and added in one
Delta transaction (deltalake's ``create_write_transaction``): readers see the new version whole
or not at all, and the files are written once instead of being read back and written again.
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
from valueloop.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa


def datasets_root(settings: Settings) -> Path:
    root = settings.artifact_root or str(settings.home)
    if "://" in root and not root.startswith("file://"):
        raise InvalidInput(f"artifact_root: datasets are kept on a local disk; got {root!r}")
    return Path(root.removeprefix("file://")) / "datasets"


def table_path(settings: Settings, usecase: str) -> Path:
    return datasets_root(settings) / usecase


#: the file in a staging folder naming the process working in it, "host pid"
OWNER = "owner"


@contextmanager
def staging(settings: Settings) -> Iterator[Path]:
    """A private work directory beside the tables (so moving files in is a rename), always removed."""
    work = datasets_root(settings) / ".staging" / uuid.uuid4().hex
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


def check_schema(table: Path, schema: pa.Schema) -> None:
    """Refuse a schema that differs from the table's current one, naming every difference."""
    from deltalake import DeltaTable, Schema

    if not DeltaTable.is_deltatable(str(table)):
        return
    current = DeltaTable(str(table))
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


def files_at(table: Path, version: int | None) -> list[Path]:
    """The data files of a version of the table (none for None, or before the first)."""
    from deltalake import DeltaTable

    if version is None or not DeltaTable.is_deltatable(str(table)):
        return []
    return [Path(uri.removeprefix("file://")) for uri in DeltaTable(str(table), version=version).file_uris()]


def unrecorded(table: Path, recorded: list[int]) -> list[int]:
    """The versions after the last recorded one, when the table's newest differs from it: versions
    committed by a process that died before writing their row. Never to be read or built on."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(str(table)):
        return []
    head, last = DeltaTable(str(table)).version(), max(recorded, default=-1)
    if head == last or (last >= 0 and set(files_at(table, head)) == set(files_at(table, last))):
        return []
    return list(range(last + 1, head + 1))


def roll_back(table: Path, recorded: list[int]) -> None:
    """Make the table's newest version hold the last recorded one's files again (a Delta restore,
    itself a new version), or remove the table when no version of it was recorded."""
    from deltalake import DeltaTable

    if not recorded:
        shutil.rmtree(table, ignore_errors=True)
        return
    DeltaTable(str(table)).restore(max(recorded))


def unreferenced(table: Path, recorded: list[int]) -> list[Path]:
    """Data files in the table's folder that no recorded version holds: moved in or committed by a
    process that died before writing the version's row."""
    if not table.is_dir():
        return []
    kept = {f for version in recorded for f in files_at(table, version)}
    return sorted(f for f in table.glob("part-*.parquet") if f not in kept)


def commit(table: Path, files: list[Path], schema: pa.Schema, mode: str, recorded: list[int]) -> int:
    """Move the staged files into the table and commit them as one new version; return it.

    The new version builds on the last ``recorded`` version: versions committed after it without
    a row are rolled back first, so that an append never adds to rows nobody recorded."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, Schema
    from deltalake.transaction import AddAction, create_table_with_add_actions

    if unrecorded(table, recorded):
        roll_back(table, recorded)
    created = not table.exists()
    table.mkdir(parents=True, exist_ok=True)
    actions, moved = [], []
    try:
        for staged in files:
            target = table / f"part-{uuid.uuid4()}.parquet"
            rows = pq.read_metadata(staged).num_rows
            os.replace(staged, target)
            moved.append(target)
            stat = target.stat()
            actions.append(AddAction(target.name, stat.st_size, {}, int(stat.st_mtime * 1000), True,
                                     json.dumps({"numRecords": rows})))
        delta_schema = Schema.from_arrow(nullable(schema))
        if DeltaTable.is_deltatable(str(table)):
            DeltaTable(str(table)).create_write_transaction(actions, mode=mode, schema=delta_schema)
        else:
            create_table_with_add_actions(str(table), delta_schema, actions, mode="error")
    except BaseException:
        for path in moved:
            path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(table, ignore_errors=True)
        raise
    return DeltaTable(str(table)).version()


def read(uri: str, version: int) -> pa.Table:
    from deltalake import DeltaTable

    return DeltaTable(uri, version=version).to_pyarrow_table()

"""Dataset versions as Delta Lake table versions, committed whole or not at all.

The staged Parquet files, already checked, are moved into the table directory and added in one
Delta transaction (deltalake's ``create_write_transaction``): readers see the new version whole
or not at all, and the files are written once instead of being read back and written again.
"""

from __future__ import annotations

import json
import os
import shutil
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


@contextmanager
def staging(settings: Settings) -> Iterator[Path]:
    """A private work directory beside the tables (so moving files in is a rename), always removed."""
    work = datasets_root(settings) / ".staging" / uuid.uuid4().hex
    work.mkdir(parents=True)
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


def current_files(table: Path) -> list[Path]:
    """The data files of the table's newest version (none before the first)."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(str(table)):
        return []
    return [Path(uri.removeprefix("file://")) for uri in DeltaTable(str(table)).file_uris()]


def commit(table: Path, files: list[Path], schema: pa.Schema, mode: str) -> int:
    """Move the staged files into the table and commit them as one new version; return it."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, Schema
    from deltalake.transaction import AddAction, create_table_with_add_actions

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

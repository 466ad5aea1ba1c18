"""Fixtures of the Learn tests: a use case with a dataset version to train on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from valueloop.config import Settings
from valueloop.examples import load_generator


def _treated(rows: int, seed: int) -> pa.Table:
    raw = load_generator("churn").generate(rows, seed)
    email = [hashlib.sha256(e.encode()).hexdigest() for e in raw["email"].to_pylist()]
    return (raw.drop_columns(["name"])
            .set_column(raw.schema.get_field_index("email") - 1, "email", pa.array(email))
            .set_column(raw.schema.get_field_index("birth_date") - 1, "birth_date",
                        pc.utf8_slice_codeunits(raw["birth_date"], 0, 4))
            .set_column(raw.schema.get_field_index("postcode") - 1, "postcode",
                        pc.utf8_slice_codeunits(raw["postcode"], 0, 2)))


@pytest.fixture
def dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., int]:
    """Stand-in for the Data phase until it lands: writes a Delta table, serves it as a version."""
    from deltalake import DeltaTable, write_deltalake

    import valueloop.data

    versions: dict[int, str] = {}

    def make(settings: Settings, rows: int = 2000, seed: int = 7, table: pa.Table | None = None) -> int:
        number = len(versions) + 1
        uri = str(tmp_path / f"delta-{number}")
        write_deltalake(uri, table if table is not None else _treated(rows, seed))
        versions[number] = uri
        return number

    def get_version(session: Any, usecase_name: str, version: int | None = None) -> Any:
        number = version or max(versions)
        return SimpleNamespace(usecase=usecase_name, version=number, uri=versions[number])

    def read_version(session: Any, usecase_name: str, version: int | None = None) -> pa.Table:
        return DeltaTable(versions[version or max(versions)]).to_pyarrow_table()

    monkeypatch.setattr(valueloop.data, "get_version", get_version, raising=False)
    monkeypatch.setattr(valueloop.data, "read_version", read_version, raising=False)
    return make

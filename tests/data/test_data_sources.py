"""Every kind of file source, glob patterns, and a Python transform for what SQL cannot express."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from data_support import ingest, read, update
from deltalake import write_deltalake

from valueloop.config import Settings
from valueloop.errors import InvalidInput
from valueloop.examples import load_generator


def _raw(rows: int = 300, seed: int = 7, period: int = 0):  # type: ignore[no-untyped-def]
    table = load_generator("churn").generate(rows, seed=seed, period=period)
    return table.set_column(3, "birth_date", table.column("birth_date").cast("date32"))


@pytest.mark.parametrize("kind", ["parquet", "delta"])
def test_parquet_and_delta_sources(settings: Settings, churn: Path, kind: str) -> None:
    if kind == "parquet":
        (churn / "crm").mkdir()
        pq.write_table(_raw(period=0), churn / "crm" / "part-0.parquet")
        pq.write_table(_raw(period=1), churn / "crm" / "part-1.parquet")
        path = "crm/*.parquet"
    else:
        write_deltalake(churn / "crm", _raw(period=0))
        write_deltalake(churn / "crm", _raw(period=1), mode="append")
        path = "crm"
    update(settings, lambda d: d["sources"][0].update(kind=kind, path=path))
    version = ingest(settings, churn)
    stored = read(settings, version.version)
    assert version.row_count == stored.num_rows == 600
    assert version.source_fingerprints["customers"]["rows"] == 600
    assert "name" not in stored.column_names
    assert sorted(stored.column("birth_date").to_pylist())[0] > 1900
    if kind == "parquet":
        assert version.source_fingerprints["customers"]["files"] == ["crm/part-0.parquet", "crm/part-1.parquet"]
    else:
        assert version.source_fingerprints["customers"]["table_version"] == 1


def test_a_python_transform(settings: Settings, churn: Path) -> None:
    (churn / "features.py").write_text(
        "import pyarrow.compute as pc\n\n\n"
        "def build(sources):\n"
        "    table = sources['customers'].read_all()\n"
        "    return table.append_column('calls_per_year', pc.divide(pc.multiply(table['support_calls'], 12.0),"
        " table['tenure_months']))\n"
    )
    update(settings, lambda d: d["data"].update(transform=None, python="features:build"))
    version = ingest(dataclasses.replace(settings, hook_modules=("@project",)), churn)
    stored = read(settings, version.version)
    assert "calls_per_year" in stored.column_names and "name" not in stored.column_names
    assert version.transform_hash == hashlib.sha256((churn / "features.py").read_bytes() + b"build").hexdigest()


def test_a_failing_python_transform_is_named(settings: Settings, churn: Path) -> None:
    (churn / "features.py").write_text("def build(sources):\n    return sources['nope']\n")
    update(settings, lambda d: d["data"].update(transform=None, python="features:build"))
    with pytest.raises(InvalidInput, match="data.python: features:build failed: KeyError: 'nope'"):
        ingest(dataclasses.replace(settings, hook_modules=("@project",)), churn)


def test_two_sources_need_a_transform(settings: Settings, churn: Path) -> None:
    update(settings, lambda d: (d["sources"].append({"name": "more", "kind": "csv", "path": "data/*.csv"}),
                                d["data"].update(transform=None)))
    with pytest.raises(InvalidInput, match=r"data.transform: 2 sources \(customers, more\) need a transform"):
        ingest(settings, churn)


def test_a_pseudonymized_key_still_joins_across_sources(settings: Settings, churn: Path) -> None:
    tickets = churn / "data" / "tickets.csv"
    emails = [r["email"] for r in _raw(600).to_pylist()[:50]]
    tickets.write_text("email,tickets\n" + "".join(f"{e},{i % 4}\n" for i, e in enumerate(emails)))
    (churn / "joined.sql").write_text(
        "SELECT c.customer_id, c.email, t.tickets FROM customers c JOIN tickets t USING (email)\n")
    update(settings, lambda d: (d["sources"].append({"name": "tickets", "kind": "csv", "path": "data/tickets.csv"}),
                                d["data"].update(transform="joined.sql", checks=[])))
    stored = read(settings, ingest(settings, churn).version)
    assert stored.num_rows == 50
    assert all(len(e) == 64 and "@" not in e for e in stored.column("email").to_pylist())


def test_a_csv_glob_whose_files_differ_in_columns_is_refused(settings: Settings, churn: Path) -> None:
    data = churn / "data"
    first = (data / "customers.csv").read_text().splitlines()
    (data / "customers_more.csv").write_text("\n".join([first[0] + ",extra"] + [line + ",1" for line in first[1:3]]) + "\n")
    update(settings, lambda d: d["sources"][0].update(path="data/customers*.csv"))
    with pytest.raises(InvalidInput, match=r"sources.customers: .*customers_more.csv has the columns .*extra; "
                                           r".*customers.csv has customer_id"):
        ingest(settings, churn)

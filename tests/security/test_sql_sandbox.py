"""User SQL runs in a sandbox over treated data only; source and transform paths stay inside the
project folder.

The attacks: a ``sql`` quality check read the treatment views (whose inlined HMAC pads give the
pseudonym key), ``/etc/passwd`` and the raw CSV, and the quality report stored what it read; a
transform read the raw file and bypassed every DPIA treatment; ``../`` paths read any file and
the error messages quoted it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from data.data_support import SMALL_EXPORT, ingest, read, update

from valueloop import data
from valueloop.config import Settings
from valueloop.errors import InvalidInput
from valueloop.store import session




def _pads(key: str) -> list[str]:
    """The HMAC pads of ``key`` in hex: whoever reads either holds the key's equivalent."""
    block = key.encode().ljust(64, b"\0")
    return [bytes(b ^ pad for b in block).hex() for pad in (0x36, 0x5C)]


def _sql_check(settings: Settings, query: str, severity: str = "warning") -> None:
    check = {"check": "sql", "name": "probe", "severity": severity, "query": query}
    update(settings, lambda d: d["data"].update(checks=[check]))


def _check_report(settings: Settings, project: Path) -> dict[str, Any]:
    with session(settings) as s:
        return data.check(s, settings, "dave", "churn", project_dir=project)


def test_a_sql_check_sees_no_view_definition_that_holds_the_key(settings: Settings, churn: Path) -> None:
    _sql_check(settings, "SELECT sql FROM duckdb_views() WHERE NOT internal UNION ALL SELECT macro_definition "
                         "FROM duckdb_functions() WHERE macro_definition IS NOT NULL")
    version = ingest(settings, churn)
    stored = json.dumps(version.quality) + json.dumps(version.treatments)
    for secret in [settings.pseudonym_key, *_pads(settings.pseudonym_key)]:
        assert secret not in stored


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('{raw}')",
    "SELECT * FROM read_csv_auto('{raw}')",
    "SELECT * FROM glob('/etc/*')",
])
def test_a_sql_check_reads_no_file(settings: Settings, churn: Path, query: str) -> None:
    raw = churn / "data" / "customers.csv"
    _sql_check(settings, query.format(raw=raw))
    with pytest.raises(InvalidInput, match=r"data.checks\[0\] probe: the query fails: .*disabled") as refused:
        _check_report(settings, churn)
    assert "root:" not in str(refused.value) and "@example" not in str(refused.value)


def test_a_sql_check_cannot_smuggle_in_a_second_statement(settings: Settings, churn: Path) -> None:
    """A query that closed the wrapping parenthesis ran statements of its own."""
    _sql_check(settings, "SELECT 1 AS x); SELECT * FROM read_text('/etc/passwd'")
    with pytest.raises(InvalidInput, match=r"data.checks\[0\] probe: ") as refused:
        _check_report(settings, churn)
    assert "root:" not in str(refused.value)


def test_failing_rows_of_a_sql_check_are_treated_values(settings: Settings, churn: Path) -> None:
    _sql_check(settings, "SELECT email, postcode FROM dataset")
    report = _check_report(settings, churn)
    sample = report["checks"][0]["sample"]
    assert len(sample) == 5
    assert all(len(r["email"]) == 64 and "@" not in r["email"] and len(r["postcode"]) == 2 for r in sample)


def test_a_transform_cannot_read_the_raw_file(settings: Settings, churn: Path) -> None:
    raw = churn / "data" / "customers.csv"
    (churn / "raw.sql").write_text(f"SELECT customer_id, email, churned FROM read_csv('{raw}')\n")
    update(settings, lambda d: d["data"].update(transform="raw.sql", checks=[]))
    with pytest.raises(InvalidInput, match=r"data.transform raw.sql: .*disabled") as refused:
        ingest(settings, churn)
    assert "@example" not in str(refused.value)


def test_a_value_that_fails_its_treatment_is_not_quoted(settings: Settings, churn: Path) -> None:
    """DuckDB's cast error quoted the raw birth date that generalize could not read."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    export = churn / "data" / "customers.csv"
    table = pacsv.read_csv(export)
    dates = table.column("birth_date").cast(pa.string()).to_pylist()
    dates[7] = "born-on-a-secret-day"
    pacsv.write_csv(table.set_column(table.schema.get_field_index("birth_date"), "birth_date", pa.array(dates)), export)
    with pytest.raises(InvalidInput, match=r"generalize of 'birth_date' \(source customers\): a value is not an "
                                           r"ISO date") as refused:
        ingest(settings, churn)
    assert "born-on-a-secret-day" not in str(refused.value)


def test_a_transform_still_reads_the_treated_sources(settings: Settings, churn: Path) -> None:
    """The sandbox keeps what transforms are for: the sources by name, already treated."""
    version = ingest(settings, churn)
    stored = read(settings, version.version)
    assert stored.num_rows == SMALL_EXPORT and "name" not in stored.column_names
    assert all(len(e) == 64 for e in stored.column("email").to_pylist())


@pytest.mark.parametrize("path", ["../../../../../../../../etc/passwd", "/etc/passwd", "data/../../outside.csv"])
def test_a_source_path_outside_the_project_is_refused(settings: Settings, churn: Path, path: str) -> None:
    (churn.parent / "outside.csv").write_text("secret_column\nroot-secret\n")
    update(settings, lambda d: d["sources"][0].update(path=path))
    with pytest.raises(InvalidInput, match=r"sources.customers.path: .*outside the project folder") as refused:
        ingest(settings, churn)
    assert "root:" not in str(refused.value) and "root-secret" not in str(refused.value)


def test_a_symlink_out_of_the_project_is_refused(settings: Settings, churn: Path) -> None:
    (churn / "data" / "link.csv").symlink_to("/etc/passwd")
    update(settings, lambda d: d["sources"][0].update(path="data/link.csv"))
    with pytest.raises(InvalidInput, match=r"sources.customers.path: .*outside the project folder") as refused:
        ingest(settings, churn)
    assert "root:" not in str(refused.value)


def test_a_glob_never_reaches_out_of_the_project(settings: Settings, churn: Path) -> None:
    (churn / "data" / "link.csv").symlink_to("/etc/passwd")
    update(settings, lambda d: d["sources"][0].update(path="data/*.csv"))
    with pytest.raises(InvalidInput, match=r"sources.customers.path: .*link.csv.* is outside the project folder"):
        ingest(settings, churn)


@pytest.mark.parametrize("kind", ["parquet", "delta"])
def test_other_file_sources_stay_inside_the_project(settings: Settings, churn: Path, kind: str) -> None:
    update(settings, lambda d: d["sources"][0].update(kind=kind, path="../../.."))
    with pytest.raises(InvalidInput, match=r"sources.customers.path: .*outside the project folder"):
        ingest(settings, churn)


@pytest.mark.parametrize("path", ["../../../../../../../../etc/passwd", "/etc/passwd"])
def test_a_transform_path_outside_the_project_is_refused(settings: Settings, churn: Path, path: str) -> None:
    update(settings, lambda d: d["data"].update(transform=path))
    with pytest.raises(InvalidInput, match=r"data.transform: .*outside the project folder") as refused:
        ingest(settings, churn)
    assert "root:" not in str(refused.value)

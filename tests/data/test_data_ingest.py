"""Ingest: the DPIA gate, the treatments, quality checks, Delta versions and their lineage."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pytest
from data_support import add_rows, approve, files_under, ingest, personal, read, update, versions

from valueloop import data
from valueloop.config import Settings
from valueloop.data.delta import datasets_root, table_path
from valueloop.data.treatments import hmac_params, hmac_sql
from valueloop.errors import Conflict, GateClosed, InvalidInput, PermissionDenied
from valueloop.outcomes import audit, privacy
from valueloop.store import session


def _export(project: Path) -> list[dict]:
    return pacsv.read_csv(project / "data" / "customers.csv").to_pylist()


def test_ingest_is_refused_while_the_dpia_awaits_a_decision(settings: Settings, churn: Path) -> None:
    update(settings, personal("tenure_months", "keep"))
    with pytest.raises(GateClosed, match="awaits the privacy officer's decision"):
        ingest(settings, churn)
    assert versions(settings) == []
    assert not table_path(settings, "churn").exists()


def test_only_a_data_engineer_ingests(settings: Settings, churn: Path) -> None:
    with session(settings) as s, pytest.raises(PermissionDenied, match="requires role data_engineer"):
        data.ingest(s, settings, "dana", "churn", project_dir=churn)


def test_the_approved_treatments_are_applied(settings: Settings, churn: Path) -> None:
    version = ingest(settings, churn)
    stored = read(settings, version.version).to_pylist()
    raw = _export(churn)
    assert len(stored) == len(raw) == version.row_count
    assert "name" not in stored[0]
    key = settings.pseudonym_key.encode()
    for before, after in zip(raw, stored, strict=True):
        assert after["email"] == hmac.new(key, before["email"].encode(), hashlib.sha256).hexdigest()
        assert after["email"] != before["email"]
        assert after["birth_date"] == before["birth_date"].year
        assert after["postcode"] == before["postcode"][:2]
        assert after["contract"] == before["contract"]
    assert version.treatments["name"] == {"treatment": "drop", "params": {}, "sources": ["customers"]}
    assert version.treatments["postcode"]["params"] == {"prefix": 2}  # the officer's condition
    with session(settings) as s:
        assert version.dpia_version == privacy.require_privacy_approval(s, "churn").version


def test_pseudonyms_are_stable_under_one_key_and_differ_under_another(settings: Settings, churn: Path) -> None:
    first = read(settings, ingest(settings, churn).version).column("email").to_pylist()
    again = read(settings, ingest(settings, churn).version).column("email").to_pylist()
    other = dataclasses.replace(settings, pseudonym_key="another-secret")
    rekeyed = read(other, ingest(other, churn).version).column("email").to_pylist()
    assert first == again
    assert all(a != b for a, b in zip(first, rekeyed, strict=True))


@pytest.mark.parametrize("key", ["short", "k" * 64, "a much longer key than one SHA-256 block " * 3])
def test_hmac_in_sql_is_rfc_2104_hmac_sha256(key: str) -> None:
    values = ["anna@example.com", "", "ünïcødé", None]
    got = duckdb.sql(f"SELECT {hmac_sql('v')} FROM unnest($values) t(v)",
                     params={"values": values, **hmac_params(key)}).fetchall()
    expected = [None if v is None else hmac.new(key.encode(), v.encode(), hashlib.sha256).hexdigest()
                for v in values]
    assert [g for (g,) in got] == expected


def test_a_failing_error_check_blocks_the_version_and_says_why(settings: Settings, churn: Path) -> None:
    first = ingest(settings, churn)
    before = files_under(Path(datasets_root(settings).path))
    row = dict(_export(churn)[0], customer_id=99_999, contract="weekly")
    add_rows(churn / "data" / "customers.csv", [row])
    with pytest.raises(InvalidInput) as refused:
        ingest(settings, churn)
    message = str(refused.value)
    assert "allowed_values(contract)" in message and "1 of 601 row(s) fail" in message
    assert "weekly" in message and "no version was written" in message
    assert versions(settings) == [first.version]
    assert files_under(Path(datasets_root(settings).path)) == before
    assert read(settings).num_rows == first.row_count


def test_a_failing_warning_is_recorded_and_the_version_written(settings: Settings, churn: Path) -> None:
    add_rows(churn / "data" / "customers.csv", [dict(_export(churn)[0], customer_id=99_999, support_calls=12)])
    version = ingest(settings, churn)
    warning = next(c for c in version.quality["checks"] if c["name"] == "plausible_support_calls")
    assert warning["status"] == "failed" and warning["failing"] == 1
    assert warning["sample"][0]["customer_id"] == 99_999
    assert version.quality["passed"] and version.quality["warnings"] == 1


def test_check_reports_without_writing(settings: Settings, churn: Path) -> None:
    add_rows(churn / "data" / "customers.csv", [dict(_export(churn)[0], monthly_charges=-5.0)])
    with session(settings) as s:
        report = data.check(s, settings, "dave", "churn", project_dir=churn)
    failed = {c["name"]: c for c in report["checks"] if c["status"] == "failed"}
    assert not report["passed"]
    assert set(failed) == {"range(monthly_charges)", "unique(customer_id)"}
    assert failed["unique(customer_id)"]["sample"] == [{"customer_id": 0, "copies": 2}]
    assert versions(settings) == []


def test_a_version_reads_back_identical_after_later_versions(settings: Settings, churn: Path) -> None:
    first = ingest(settings, churn)
    original = read(settings, first.version)
    from valueloop.examples import load_generator

    load_generator("churn").write(churn / "data", rows=300, seed=8, period=1)
    update(settings, lambda d: d["sources"][0].update(path="data/customers*.csv"))
    second = ingest(settings, churn, mode="overwrite")
    (churn / "data" / "customers_period1.csv").unlink()
    load_generator("churn").write(churn / "data", rows=200, seed=9, period=2)
    update(settings, lambda d: d["sources"][0].update(path="data/customers_period2.csv"))
    third = ingest(settings, churn, mode="append")
    assert [first.version, second.version, third.version] == [0, 1, 2]
    assert read(settings, first.version).equals(original)
    assert second.row_count == 900 and third.row_count == 1100
    assert read(settings, third.version).num_rows == 1100
    assert read(settings).num_rows == 1100  # the newest


def test_the_delta_table_opens_in_duckdb_and_polars(settings: Settings, churn: Path) -> None:
    import polars as pl
    from deltalake import DeltaTable

    version = ingest(settings, churn)
    con = duckdb.connect()
    con.register("churn", DeltaTable(version.uri, version=version.version).to_pyarrow_dataset())
    assert con.execute("SELECT count(*), count(DISTINCT contract) FROM churn").fetchone() == (600, 3)
    frame = pl.read_delta(version.uri, version=version.version)
    assert frame.height == 600 and "name" not in frame.columns
    assert frame["email"].to_list() == read(settings).column("email").to_pylist()


def test_lineage_and_profile_are_recorded(settings: Settings, churn: Path) -> None:
    version = ingest(settings, churn)
    csv = churn / "data" / "customers.csv"
    fingerprint = version.source_fingerprints["customers"]
    assert fingerprint["rows"] == 600 and fingerprint["files"] == ["data/customers.csv"]
    assert fingerprint["digest"] == hashlib.sha256(b"data/customers.csv\0" + csv.read_bytes()).hexdigest()
    assert version.transform_hash == hashlib.sha256((churn / "transform.sql").read_bytes()).hexdigest()
    assert version.project_dir == str(churn)
    assert [c.name for c in version.columns][:3] == ["customer_id", "email", "birth_date"]
    charges = version.profile["columns"]["monthly_charges"]
    assert sum(charges["histogram"]["counts"]) == 600 - charges["nulls"]
    assert len(charges["histogram"]["edges"]) == len(charges["histogram"]["counts"]) + 1
    assert charges["min"] <= charges["quantiles"]["p50"] <= charges["max"]
    contract = version.profile["columns"]["contract"]
    assert {t["value"] for t in contract["top_values"]} == {"month-to-month", "one_year", "two_year"}
    assert sum(t["count"] for t in contract["top_values"]) == 600
    assert "top_values" not in version.profile["columns"]["email"]  # an identifier
    with session(settings) as s:
        event = audit.events(s, usecase="churn", action="data.ingest")[-1]
    assert event.actor == "dave" and event.after["version"] == version.version


def test_a_conflicting_schema_is_refused(settings: Settings, churn: Path) -> None:
    ingest(settings, churn)
    transform = churn / "transform.sql"
    transform.write_text(transform.read_text().replace("churned", "CAST(churned AS VARCHAR) AS churned"))
    before = files_under(Path(datasets_root(settings).path))
    with pytest.raises(Conflict, match="column churned: string, was long"):
        ingest(settings, churn)
    assert versions(settings) == [0] and files_under(Path(datasets_root(settings).path)) == before


def test_a_treatment_of_a_missing_column_is_refused(settings: Settings, churn: Path) -> None:
    update(settings, personal("phone", "pseudonymize"))
    approve(settings)
    with pytest.raises(InvalidInput, match="treatment of column.s. phone but no source has such a column"):
        ingest(settings, churn)
    assert not table_path(settings, "churn").exists()


def test_a_generalization_that_does_not_fit_the_type_is_refused(settings: Settings, churn: Path) -> None:
    update(settings, personal("tenure_months", "generalize", to="year"))
    approve(settings)
    with pytest.raises(InvalidInput, match="generalize of 'tenure_months' .a int64 in source customers."):
        ingest(settings, churn)


def test_bucket_generalization(settings: Settings, churn: Path) -> None:
    update(settings, personal("monthly_charges", "generalize", bucket=10))
    approve(settings)
    stored = read(settings, ingest(settings, churn).version).column("monthly_charges").to_pylist()
    raw = [r["monthly_charges"] for r in _export(churn)]
    assert stored == [(v // 10) * 10 for v in raw]


def test_a_missing_export_is_named(settings: Settings, churn: Path) -> None:
    (churn / "data" / "customers.csv").unlink()
    with pytest.raises(InvalidInput, match=r"sources.customers.path: no file matches 'data/customers.csv'"):
        ingest(settings, churn)


def test_sql_errors_name_the_line(settings: Settings, churn: Path) -> None:
    transform = churn / "transform.sql"
    transform.write_text(transform.read_text().replace("    support_calls,", "    support_cals,"))
    with pytest.raises(InvalidInput) as refused:
        ingest(settings, churn)
    assert "data.transform transform.sql" in str(refused.value)
    assert "support_cals" in str(refused.value) and "LINE 14" in str(refused.value)


def test_the_project_directory_is_remembered(settings: Settings, churn: Path,
                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ingest(settings, churn)
    monkeypatch.chdir(tmp_path)
    with session(settings) as s:
        again = data.ingest(s, settings, "dave", "churn")
    assert again.project_dir == str(churn) and again.version == 1


def test_generalize_to_month_of_a_date(settings: Settings, churn: Path) -> None:
    update(settings, lambda d: next(c for c in d["privacy"]["columns"]
                                    if c["column"] == "birth_date").update(params={"to": "month"}))
    approve(settings)
    stored = read(settings, ingest(settings, churn).version).column("birth_date").to_pylist()
    raw: list[date] = [r["birth_date"] for r in _export(churn)]
    assert stored == [f"{d.year}-{d.month:02d}" for d in raw]


def test_freshness_of_the_newest_row(settings: Settings, churn: Path) -> None:
    transform = churn / "transform.sql"
    transform.write_text(transform.read_text().replace("    churned\n", "    churned,\n    DATE '2020-01-31' AS extracted_on\n"))
    update(settings, lambda d: d["data"]["checks"].append(
        {"check": "freshness", "column": "extracted_on", "max_age": "30d"}))
    with pytest.raises(InvalidInput, match=r"freshness\(extracted_on\) \(error\): newest extracted_on is 2020-01-31"):
        ingest(settings, churn)
    transform.write_text(transform.read_text().replace("DATE '2020-01-31'", "current_date"))
    version = ingest(settings, churn)
    assert next(c for c in version.quality["checks"] if c["check"] == "freshness")["status"] == "passed"


def test_a_value_the_csv_reader_cannot_convert_is_named(settings: Settings, churn: Path) -> None:
    from valueloop.examples import load_generator

    csv = load_generator("churn").write(churn / "data", rows=30_000)  # beyond the reader's first block
    lines = csv.read_text().splitlines()
    lines[-1] = lines[-1].replace(lines[-1].split(",")[0], "not-a-number", 1)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInput, match="sources.customers: cannot be read: In CSV column #0: Row #30001: CSV conversion error to int64: invalid value .not-a-number."):
        ingest(settings, churn)
    assert versions(settings) == []


def test_the_source_is_parsed_in_a_thread_of_its_own(settings: Settings, churn: Path) -> None:
    """The CSV parse runs on one core while the treatments and the write run on the other."""
    import threading

    from valueloop.examples import load_generator

    load_generator("churn").write(churn / "data", rows=30_000)  # several of the reader's blocks
    readers = set()
    version = ingest(settings, churn, progress=lambda step, rows: step.startswith("reading") and rows
                     and readers.add(threading.current_thread().name))
    assert version.row_count == 30_000
    assert readers == {"read-customers"}

"""A SQL source on a real PostgreSQL: streamed in chunks through a server-side cursor."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from data_support import ingest, read, update

from valueloop.config import Settings
from valueloop.data import sources
from valueloop.errors import InvalidInput
from valueloop.examples import load_generator

ROWS = 600


@pytest.fixture
def pg_settings(pg_settings: Settings) -> Settings:
    """The PostgreSQL settings whose SQL source URLs may read ${CRM_URL}."""
    return dataclasses.replace(pg_settings, url_variables=("CRM_URL",))


@pytest.fixture
def crm(pg_settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]],
        monkeypatch: pytest.MonkeyPatch) -> Path:
    """The approved churn use case whose customers come from a PostgreSQL table via ${CRM_URL}."""
    _, project = approved_usecase(pg_settings)
    rows = load_generator("churn").generate(ROWS, seed=7).to_pylist()
    plain = pg_settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        conn.execute(
            "CREATE TABLE crm_customers (customer_id bigint PRIMARY KEY, name text, email text, "
            "birth_date date, postcode text, contract text, tenure_months int, monthly_charges "
            "double precision, support_calls int, payment_method text, churned int)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO crm_customers VALUES (%(customer_id)s, %(name)s, %(email)s, %(birth_date)s, "
                "%(postcode)s, %(contract)s, %(tenure_months)s, %(monthly_charges)s, %(support_calls)s, "
                "%(payment_method)s, %(churned)s)", rows)
    monkeypatch.setenv("CRM_URL", pg_settings.database_url)
    monkeypatch.setattr(sources, "SQL_CHUNK_ROWS", 128)  # several chunks from 600 rows
    update(pg_settings, lambda d: d.update(sources=[{
        "name": "customers", "kind": "sql", "url": "${CRM_URL}",
        "query": "SELECT * FROM crm_customers ORDER BY customer_id",
    }]))
    return project


def test_a_postgresql_source_is_streamed_treated_and_versioned(pg_settings: Settings, crm: Path) -> None:
    version = ingest(pg_settings, crm)
    again = ingest(pg_settings, crm)
    stored = read(pg_settings, version.version)
    fingerprint = version.source_fingerprints["customers"]
    assert version.row_count == ROWS == fingerprint["rows"] == stored.num_rows
    assert fingerprint["kind"] == "sql" and "password" not in fingerprint["database"]
    assert fingerprint["digest"] == again.source_fingerprints["customers"]["digest"]
    raw = load_generator("churn").generate(ROWS, seed=7).to_pylist()
    assert "name" not in stored.column_names
    assert stored.column("postcode").to_pylist() == [r["postcode"][:2] for r in raw]
    assert stored.column("birth_date").to_pylist() == [int(r["birth_date"][:4]) for r in raw]
    assert stored.column("customer_id").to_pylist() == list(range(ROWS))


def test_a_query_error_is_the_database_s_message(pg_settings: Settings, crm: Path) -> None:
    update(pg_settings, lambda d: d["sources"][0].update(query="SELECT *\nFROM crm_customer"))
    with pytest.raises(InvalidInput, match=r"(?s)sources.customers.query: the database refused it: .*crm_customer.*LINE 2"):
        ingest(pg_settings, crm)


def test_an_unreachable_database_is_named(pg_settings: Settings, crm: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_URL", "postgresql+psycopg://nobody:secret@127.0.0.1:1/crm")
    with pytest.raises(InvalidInput, match="sources.customers: cannot reach the database") as refused:
        ingest(pg_settings, crm)
    assert "secret" not in str(refused.value)


def test_an_unset_variable_in_the_url_is_named(pg_settings: Settings, crm: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_URL")
    with pytest.raises(InvalidInput, match="sources.customers.url: environment variable CRM_URL is not set"):
        ingest(pg_settings, crm)


def test_the_rows_come_through_a_server_side_cursor_a_chunk_at_a_time(pg_settings: Settings, crm: Path) -> None:
    """While the ingest reads, the source's own connection is seen from another one: each chunk
    is a FETCH from a declared cursor, never the query read whole (as ``fetchall`` would)."""
    plain = pg_settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    seen: list[tuple[int, list[str]]] = []
    with psycopg.connect(plain, autocommit=True) as watcher:

        def progress(step: str, rows: int) -> None:
            if step.startswith("reading"):
                queries = [q for (q,) in watcher.execute(
                    "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND (query ILIKE '%crm_customers%' OR query ILIKE 'FETCH%')")]
                seen.append((rows, queries))

        ingest(pg_settings, crm, progress=progress)
    read = [(rows, queries) for rows, queries in seen if rows]
    assert [rows for rows, _ in read] == [128, 256, 384, 512, 600]
    for rows, queries in read:
        assert len(queries) == 1 and re.fullmatch(r'FETCH FORWARD 12[78] FROM "\w+"', queries[0]), (rows, queries)

"""The approved DPIA's treatments as DuckDB SQL, applied to each source before the transform.

Treating the sources rather than the transform's output means no transform ever sees a raw
personal value or can rename one past its treatment, and a pseudonymized key still joins
across sources, since the same value always gives the same pseudonym under one key.

The key's HMAC pads are query parameters, never SQL text: a view definition, a query log or an
error message that quotes the query cannot give the key away.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from valueloop.config import key_id
from valueloop.errors import InvalidInput
from valueloop.outcomes.spec import ColumnTreatment, Treatment

if TYPE_CHECKING:
    import pyarrow as pa

_BLOCK = 64  # SHA-256's block size in bytes


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def hmac_sql(value_sql: str, pads: str = "hmac") -> str:
    """Keyed HMAC-SHA256 (RFC 2104) in lowercase hex, vectorized in DuckDB from its ``sha256``;
    the key's pads are the parameters ``hmac_params`` gives under the name ``pads``.

    Equal to ``hmac.new(key, value, sha256).hexdigest()`` (a test holds it to that); NULL stays NULL.
    """
    return (f"sha256(unhex(${pads}_outer) || unhex(sha256(unhex(${pads}_inner) || "
            f"encode(CAST({value_sql} AS VARCHAR)))))")


def hmac_params(key: str, pads: str = "hmac") -> dict[str, str]:
    """The parameters of ``hmac_sql``: the key's inner and outer pads in hex."""
    secret = key.encode()
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK, b"\0")
    return {f"{pads}_inner": bytes(b ^ 0x36 for b in secret).hex(),
            f"{pads}_outer": bytes(b ^ 0x5C for b in secret).hex()}


def pseudonym(value: str, key: str) -> str:
    """The pseudonym of one value, as the ingest computes it: to look a known value up."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def pseudonyms(values: pa.Array, key: str) -> pa.Array:
    """Each value's pseudonym as ingest computes it (``hmac_sql``, the key as parameters only).
    A value of a pseudonym's form (64 lowercase hex digits) is taken as already stored: rows
    read from a dataset version hold the pseudonym, rows from the source system the raw value."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    try:
        con.register("ids", pa.table({"id": values}))
        value = "CAST(id AS VARCHAR)"
        query = f"SELECT CASE WHEN regexp_full_match({value}, '[0-9a-f]{{64}}') THEN {value} ELSE {hmac_sql('id')} END"
        return con.execute(f"{query} AS id FROM ids", hmac_params(key)).to_arrow_table()["id"].combine_chunks()
    finally:
        con.close()


def _cut_date(date_sql: str, to: str) -> str:
    return f"year({date_sql})" if to == "year" else f"strftime({date_sql}, '%Y-%m')"


def _generalize(column: str, field: pa.Field, params: dict[str, Any], source: str) -> str:
    import pyarrow.types as t

    ref, kind = quote(column), field.type
    where = f"privacy: generalize of '{column}' (a {kind} in source {source})"
    if "to" in params:
        if not (t.is_date(kind) or t.is_timestamp(kind) or t.is_string(kind) or t.is_large_string(kind)):
            raise InvalidInput(f"{where}: to: {params['to']} needs a date, a timestamp or an ISO date text")
        if params["to"] not in ("year", "month"):
            raise InvalidInput(f"{where}: to must be year or month, got {params['to']!r}")
        if t.is_date(kind) or t.is_timestamp(kind):
            return _cut_date(ref, params["to"])
        # DuckDB's own cast error quotes the value, which is personal data: name the rule instead
        refused = (f"privacy: generalize of '{column}' (source {source}): a value is not an ISO date "
                   "(YYYY-MM-DD); it is not shown, being personal data").replace("'", "''")
        as_date = f"TRY_CAST({ref} AS DATE)"
        return (f"CASE WHEN {ref} IS NOT NULL AND {as_date} IS NULL THEN error('{refused}') "
                f"ELSE {_cut_date(as_date, params['to'])} END")
    if "bucket" in params:
        width = params["bucket"]
        if isinstance(width, bool) or not isinstance(width, int | float) or width <= 0:
            raise InvalidInput(f"{where}: bucket must be a positive number, got {width!r}")
        if t.is_integer(kind) and isinstance(width, int):
            return f"({ref} // {width}) * {width}"
        if t.is_integer(kind) or t.is_floating(kind) or t.is_decimal(kind):
            return f"floor({ref} / {width}) * {width}"
        raise InvalidInput(f"{where}: bucket needs a number")
    length = params["prefix"]
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise InvalidInput(f"{where}: prefix must be a positive whole length, got {length!r}")
    return f"left(CAST({ref} AS VARCHAR), {length})"


def check_coverage(treatments: dict[str, ColumnTreatment], personal: list[str],
                   schemas: dict[str, pa.Schema]) -> None:
    """Refuse a personal column without a treatment, and a treatment of a column no source has."""
    if untreated := sorted(set(personal) - set(treatments)):
        raise InvalidInput(f"privacy: personal column(s) {', '.join(untreated)} have no approved treatment")
    present = {name for schema in schemas.values() for name in schema.names}
    if missing := sorted(set(treatments) - present):
        columns = "; ".join(f"{s}: {', '.join(schema.names)}" for s, schema in schemas.items())
        raise InvalidInput(
            f"privacy: treatment of column(s) {', '.join(missing)} but no source has such a column "
            f"({columns})"
        )


def treating_query(schema: pa.Schema, treatments: dict[str, ColumnTreatment], key: str, source: str,
                   table: str, where: str = "") -> tuple[str, dict[str, str]]:
    """The SELECT from ``table`` that gives a source's columns their treatments (dropped ones are
    left out), and its parameters; ``where`` (SQL over the raw columns) keeps only some rows."""
    items, pseudonymized = [], False
    for field in schema:
        rule = treatments.get(field.name)
        if rule is None or rule.treatment is Treatment.keep:
            items.append(quote(field.name))
        elif rule.treatment is Treatment.pseudonymize:
            items.append(f"{hmac_sql(quote(field.name))} AS {quote(field.name)}")
            pseudonymized = True
        elif rule.treatment is Treatment.generalize:
            items.append(f"{_generalize(field.name, field, rule.params, source)} AS {quote(field.name)}")
    if not items:
        raise InvalidInput(f"privacy: every column of source {source} is dropped; nothing is left to ingest")
    return (f"SELECT {', '.join(items)} FROM {quote(table)}" + (f" WHERE {where}" if where else ""),
            hmac_params(key) if pseudonymized else {})


def erased_filter(schema: pa.Schema, treatments: dict[str, ColumnTreatment],
                  erased: dict[str, dict[str, list[str]]]) -> tuple[str, dict[str, Any]]:
    """The WHERE over a source's raw columns that leaves out the rows of erased subjects, and its
    parameters. ``erased`` holds each column's tokens by the key they were recorded under: a token
    is the keyed HMAC of the value as stored under that key (its pseudonym, for a pseudonymized
    column), so a subject erased before a rotation is recognized under the retired key. A dropped
    column is never stored, so it names no one here."""
    kept: list[str] = []
    params: dict[str, Any] = {}
    for column, by_key in erased.items():
        rule = treatments.get(column)
        if column not in schema.names or (rule is not None and rule.treatment is Treatment.drop):
            continue
        for key, tokens in by_key.items():
            name = f"erased_{len(kept)}"
            stored = f"CAST({quote(column)} AS VARCHAR)"
            if rule is not None and rule.treatment is Treatment.pseudonymize:
                stored = hmac_sql(stored, name)
            kept.append(f"NOT coalesce(list_contains(${name}, {hmac_sql(stored, name)}), false)")
            params |= {name: tokens, **hmac_params(key, name)}
    return " AND ".join(kept), params


def applied(treatments: dict[str, ColumnTreatment], schemas: dict[str, pa.Schema], key: str) -> dict[str, Any]:
    """What was done to which column in which source, stored with the version as its lineage; a
    pseudonym names its key by the key's id, so a rotation shows."""
    lineage = {}
    for column, rule in sorted(treatments.items()):
        lineage[column] = {"treatment": rule.treatment.value, "params": rule.params,
                           "sources": sorted(s for s, schema in schemas.items() if column in schema.names)}
        if rule.treatment is Treatment.pseudonymize:
            lineage[column]["key_id"] = key_id(key)
    return lineage


def key_ids(lineage: dict[str, Any]) -> set[str]:
    """The ids of the keys a version's pseudonyms were made under (none before key ids were kept)."""
    return {t["key_id"] for t in lineage.values() if "key_id" in t}

"""Quality checks of the use case file, run as DuckDB SQL over the staged dataset.

Every row-level check becomes a predicate that is true for a failing row, and all of them are
counted in one scan, so checks cost one pass however many there are and never load the data
(pandera's pyarrow backend took 5.8 s for four checks on 2 M rows, where this scan takes under
one); an ingest counts them with its profile's aggregates over the rows as they are staged
(``pipeline.Tally``), so they cost no pass of their own. Failing checks then fetch a few
failing rows as the sample.

A ``sql`` check is the use case file's own SQL: it runs in the sandbox (see ``sandbox``), which
holds the staged dataset and nothing else, so what it returns are treated values.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from valueloop.data.plain import plain, rows, scan
from valueloop.data.sandbox import one_select
from valueloop.data.treatments import quote
from valueloop.errors import InvalidInput
from valueloop.outcomes.spec import (
    AllowedValuesCheck,
    Check,
    FreshnessCheck,
    NotNullCheck,
    PatternCheck,
    RangeCheck,
    RowCountCheck,
    SqlCheck,
    TypeCheck,
    UniqueCheck,
)

if TYPE_CHECKING:
    import duckdb

SAMPLE_ROWS = 5

#: DuckDB type names (their prefix) that satisfy each dtype of a type check
_DTYPES = {
    "integer": ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                "UINTEGER", "UBIGINT", "UHUGEINT"),
    "float": ("FLOAT", "DOUBLE"),
    "string": ("VARCHAR",),
    "boolean": ("BOOLEAN",),
    "date": ("DATE",),
    "timestamp": ("TIMESTAMP",),
}
_DTYPES["number"] = _DTYPES["integer"] + _DTYPES["float"] + ("DECIMAL",)


def label(check: Check) -> str:
    if check.name:
        return check.name
    columns = _columns_of(check)
    return f"{check.check}({', '.join(columns)})" if columns else check.check


def _literal(value: Any, as_text: bool) -> str:
    if as_text or isinstance(value, str):
        return "'" + str(value).replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(value)


def _failing(check: Check, types: dict[str, str]) -> str | None:
    """The predicate a failing row satisfies, for the checks that judge rows one by one."""
    if isinstance(check, NotNullCheck):
        return f"{quote(check.column)} IS NULL"
    if isinstance(check, RangeCheck):
        parts = ([f"{quote(check.column)} < {check.min!r}"] if check.min is not None else []) + (
            [f"{quote(check.column)} > {check.max!r}"] if check.max is not None else [])
        return " OR ".join(parts)
    if isinstance(check, AllowedValuesCheck):
        text = types[check.column].startswith("VARCHAR")
        values = ", ".join(_literal(v, text) for v in check.values)
        return f"{quote(check.column)} NOT IN ({values})"
    if isinstance(check, PatternCheck):
        pattern = check.pattern.replace("'", "''")
        return f"NOT regexp_full_match(CAST({quote(check.column)} AS VARCHAR), '{pattern}')"
    return None


def _columns_of(check: Check) -> list[str]:
    return list(getattr(check, "columns", None) or ([check.column] if hasattr(check, "column") else []))


def _validate(checks: list[Check], types: dict[str, str]) -> None:
    for i, check in enumerate(checks):
        for column in _columns_of(check):
            if column not in types:
                raise InvalidInput(
                    f"data.checks[{i}] {label(check)}: column '{column}' is not in the dataset; "
                    f"columns: {', '.join(types)}"
                )
        if isinstance(check, PatternCheck):
            try:
                re.compile(check.pattern)
            except re.error as exc:
                raise InvalidInput(f"data.checks[{i}] {label(check)}: pattern is not a regular expression: {exc}") from None


def _repeats(check: UniqueCheck, table: str) -> str:
    """How many rows repeat a key: a query of its own, which reads only the key's columns (a
    DISTINCT among the shared scan's aggregates makes DuckDB plan the whole scan slower)."""
    key = quote(check.columns[0]) if len(check.columns) == 1 else f"({', '.join(map(quote, check.columns))})"
    return f"SELECT count({key}) - count(DISTINCT {key}) FROM {table}"


def _result(check: Check, failing: int, message: str, sample: list[Any] | None = None) -> dict[str, Any]:
    return {"name": label(check), "check": check.check, "severity": check.severity,
            "status": "failed" if failing else "passed", "failing": failing, "message": message,
            "sample": sample or []}


def _fresh(newest: Any, check: FreshnessCheck) -> tuple[bool, str]:
    limit = check.max_age.delta
    if newest is None:
        return False, f"{check.column} has no values"
    if isinstance(newest, datetime):
        now = datetime.now(UTC) if newest.tzinfo else datetime.now(UTC).replace(tzinfo=None)
    elif isinstance(newest, date):
        now, newest = datetime.now(UTC).replace(tzinfo=None), datetime.combine(newest, datetime.min.time())
    else:
        raise InvalidInput(f"data.checks {label(check)}: {check.column} is not a date or timestamp")
    age = now - newest
    return age <= limit, f"newest {check.column} is {newest.isoformat()}, {age.days} day(s) old; allowed {check.max_age}"


def aggregates(checks: list[Check], types: dict[str, str]) -> list[str]:
    """The aggregates the checks need of a table with columns of ``types``, the row count first;
    a check of a column not in ``types`` is refused."""
    _validate(checks, types)
    found = ["count(*)"]
    for check in checks:
        if (predicate := _failing(check, types)) is not None:
            found.append(f"count(*) FILTER (WHERE {predicate})")
        elif isinstance(check, FreshnessCheck):
            found.append(f"max({quote(check.column)})")
    return found


class Checker:
    """The checks in two steps around one scan, so that the profile can share it: build it,
    compute ``aggregates`` over the table, then ``report`` with their values."""

    def __init__(self, con: duckdb.DuckDBPyConnection, user: duckdb.DuckDBPyConnection, checks: list[Check],
                 table: str = "dataset") -> None:
        """``con`` runs valueloop's own queries, ``user`` (a sandbox with the same ``table``) the
        checks' SQL."""
        self._con, self._user, self._checks, self._table = con, user, checks, table
        #: the DuckDB type of each column, by name
        self.types = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
        self.aggregates = aggregates(checks, self.types)

    def report(self, values: list[Any]) -> dict[str, Any]:
        """Which checks failed, how often, with failing rows (fetched for the failed ones only)."""
        import duckdb

        con, table, types = self._con, self._table, self.types
        total, measured = values[0], iter(values[1:])
        results = []
        for i, check in enumerate(self._checks):
            if isinstance(check, TypeCheck):
                actual = types[check.column]
                ok = actual.startswith(_DTYPES[check.dtype])
                results.append(_result(check, 0 if ok else total,
                                       f"{check.column} is {actual}" + ("" if ok else f", expected {check.dtype}")))
            elif isinstance(check, RowCountCheck):
                low = check.min is not None and total < check.min
                high = check.max is not None and total > check.max
                bounds = f"[{check.min if check.min is not None else ''}, {check.max if check.max is not None else ''}]"
                results.append(_result(check, int(low or high), f"{total} rows; allowed {bounds}"))
            elif isinstance(check, FreshnessCheck):
                ok, message = _fresh(next(measured), check)
                results.append(_result(check, 0 if ok else 1, message))
            elif isinstance(check, UniqueCheck):
                failing = con.execute(_repeats(check, table)).fetchone()[0]
                sample = []
                if failing:
                    key = ", ".join(map(quote, check.columns))
                    sample = rows(con.execute(
                        f"SELECT {key}, count(*) AS copies FROM {table} WHERE {' AND '.join(f'{quote(c)} IS NOT NULL' for c in check.columns)} "
                        f"GROUP BY ALL HAVING count(*) > 1 ORDER BY copies DESC LIMIT {SAMPLE_ROWS}"))
                results.append(_result(check, failing, f"{failing} row(s) repeat a value of {', '.join(check.columns)}", sample))
            elif isinstance(check, SqlCheck):
                query = one_select(check.query, f"data.checks[{i}] {label(check)}")
                try:
                    failing = self._user.execute(f"SELECT count(*) FROM ({query}\n)").fetchone()[0]
                    sample = rows(self._user.execute(
                        f"SELECT * FROM ({query}\n) LIMIT {SAMPLE_ROWS}")) if failing else []
                except duckdb.Error as exc:
                    raise InvalidInput(f"data.checks[{i}] {label(check)}: the query fails: {exc}") from None
                results.append(_result(check, failing, f"{failing} row(s) returned by the query", sample))
            else:
                failing = next(measured)
                sample = []
                if failing:
                    sample = rows(con.execute(
                        f"SELECT * FROM {table} WHERE {_failing(check, types)} LIMIT {SAMPLE_ROWS}"))
                results.append(_result(check, failing, f"{failing} of {total} row(s) fail", sample))

        errors = [r for r in results if r["status"] == "failed" and r["severity"] == "error"]
        warnings = [r for r in results if r["status"] == "failed" and r["severity"] == "warning"]
        return plain({"passed": not errors, "rows": total, "errors": len(errors),
                      "warnings": len(warnings), "checks": results})


def run(con: duckdb.DuckDBPyConnection, user: duckdb.DuckDBPyConnection, checks: list[Check],
        table: str = "dataset") -> dict[str, Any]:
    """Run every check on ``table``; the report says which failed, how often, and shows failing rows."""
    checker = Checker(con, user, checks, table)
    return checker.report(scan(con, table, checker.aggregates)[0])


def failures(report: dict[str, Any], severity: str = "error") -> list[str]:
    """One line per failed check of ``severity``, with its count and first failing rows."""
    return [f"{r['name']} ({r['severity']}): {r['message']}"
            + (f"; e.g. {r['sample'][:3]}" if r["sample"] else "")
            for r in report["checks"] if r["status"] == "failed" and r["severity"] == severity]

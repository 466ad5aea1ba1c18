"""Raw records to the features a model was trained on: the pipeline recorded with its version.

A model version carries (in its MLflow metadata, under the artifact digest) what its training
data went through: each source's raw schema, the DPIA's treatments and, when the transform is
row-level, the transform's query. A raw record, as the source system exports it (its id and its
personal columns), is treated exactly as ingest treated the source: the same DuckDB SQL, the key
reaching a private connection as query parameters only; then the transform runs in the sandbox,
which sees treated rows only, as at ingest. Only the resulting features go further (to the model
and the prediction log): no raw birth date, postcode or e-mail.

A record is raw when it carries a field that is not one of the model's features; a record of
features alone is taken as treated. When the transform is not row-level, features it computes
come from upstream (``model.features.upstream``) and are sent as they are, beside the raw columns.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valueloop.data.serving import METADATA_KEY, ROW, schema_of
from valueloop.deploy.schema import Column, Validator
from valueloop.deploy.table_rules import arrow_kind
from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["METADATA_KEY", "Contract", "RawPipeline"]


#: the signature type a raw column of each kind is read as from JSON
_SIGNATURE_TYPES = {"boolean": "boolean", "integer": "long", "float": "double", "datetime": "datetime"}


class RawPipeline:
    """One model version's pipeline, with the connections it runs in (opened on first use)."""

    def __init__(self, recorded: dict[str, Any], model: Validator, key: str | None, work: Path) -> None:
        import pyarrow as pa

        from valueloop.config import key_id
        from valueloop.outcomes.spec import ColumnTreatment

        self.recorded, self.model, self.work = recorded, model, work
        self.query, self.source = recorded.get("query"), recorded.get("source")
        self.upstream = list(recorded.get("upstream") or [])
        fields: dict[str, pa.Field] = {}
        for source in recorded["sources"].values():
            for field in schema_of(source["schema"]):
                fields.setdefault(field.name, field)
        self.schema = pa.schema(list(fields.values()))
        self.treatments = {c: ColumnTreatment(column=c, treatment=t["treatment"], params=t.get("params") or {})
                           for c, t in recorded["treatments"].items() if t["treatment"] != "keep"}
        stale = sorted(c for c, t in recorded["treatments"].items()
                       if "key_id" in t and key is not None and t["key_id"] != key_id(key) and c in model.names)
        self.refusal = (f"feature(s) {', '.join(stale)} were pseudonymized under another key than the current one; "
                        "send treated features, or retrain on a dataset version made under the current key") \
            if stale else None
        typed = {c.name: c for c in model.columns}
        sources = ", ".join(recorded["sources"])
        self.validator = Validator([Column(n, _SIGNATURE_TYPES.get(arrow_kind(f.type), "string"), False)
                                    for n, f in fields.items() if n not in self.upstream]
                                   + [typed[n] for n in self.upstream if n in typed],
                                   f"{model.accepted}, or those of a raw record of {sources}: {', '.join(fields)}")
        self.fields = frozenset(self.validator.names)
        self.raw_only = self.fields - set(recorded.get("dataset_columns") or model.names)
        model.accepted = self.validator.accepted  # an unknown field's message names both forms
        self._key = key
        self._lock = threading.Lock()
        self._private: duckdb.DuckDBPyConnection | None = None
        self._sandbox: duckdb.DuckDBPyConnection | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to a Dask worker) without the key and connections: raw records are treated
        where the key lives, never on a worker."""
        return self.__dict__ | {"_key": None, "_lock": None, "_private": None, "_sandbox": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """What a client may send instead of the features (the model's metadata shows it)."""
        return {"fields": [c.describe() for c in self.validator.columns],
                "treatments": {c: t["treatment"] for c, t in self.recorded["treatments"].items()},
                "transform": "row-level, applied per record" if self.query else
                f"not row-level ({self.recorded.get('not_row_level')}): its features come from upstream",
                "upstream": self.upstream}

    def is_raw(self, names: set[str] | frozenset[str]) -> bool:
        """Rows (a request, an event, an input file's columns) are raw records when they hold a
        source column no dataset version has (one the treatments drop, such as a name), or lack a
        feature the transform computes. Features alone, or a dataset version's columns (an id, the
        target), are taken as treated."""
        computed = any(c.required and c.name not in names and c.name not in self.fields for c in self.model.columns)
        return computed or bool(names & self.raw_only)

    def _connections(self) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
        from valueloop.data.sandbox import lock_down, open_connection

        if self._private is None or self._sandbox is None:
            self.work.mkdir(parents=True, exist_ok=True)
            self._private, self._sandbox = open_connection(self.work), lock_down(open_connection(self.work), [])
        return self._private, self._sandbox

    def _raw_table(self, data: pa.Table) -> pa.Table:
        """``data`` with every raw column in its source's type (a missing one as nulls) and the
        row numbers; a value the source type cannot hold is refused by column."""
        import pyarrow as pa

        columns = {}
        for field in self.schema:
            if field.name not in data.column_names:
                columns[field.name] = pa.nulls(data.num_rows, field.type)
                continue
            try:
                columns[field.name] = data.column(field.name).cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InvalidInput(f"raw field '{field.name}': not readable as the source's {field.type} "
                                   f"({str(exc).splitlines()[0][:120]})") from None
        for name in self.upstream:
            if name in data.column_names:
                columns[name] = data.column(name)
        columns[ROW] = pa.array(range(data.num_rows), pa.int64())
        return pa.table(columns)

    def treated(self, data: pa.Table) -> pa.Table:
        """Raw records after the treatments and the transform, in their order, with their row
        number (:data:`ROW`): a record the transform's filter drops has no row. Not yet held to
        the model's rules."""
        import pyarrow.compute as pc

        from valueloop.data import treatments as treat

        if self.refusal is not None:
            raise InvalidInput(f"raw records cannot be scored: {self.refusal}")
        raw = self._raw_table(data)
        with self._lock:
            private, sandbox = self._connections()
            query, params = treat.treating_query(raw.schema, self.treatments, self._key or "", self.source or "raw",
                                                 "raw")
            cursor = private.cursor()
            cursor.register("raw", raw)
            treated = cursor.sql(query, params=params or None).to_arrow_table()
            cursor.close()
            if self.query is not None:
                user = sandbox.cursor()
                user.register(self.source, treated)
                treated = user.sql(self.query).to_arrow_table()
                user.close()
        return treated.take(pc.sort_indices(treated[ROW]))

    @staticmethod
    def dropped(rows: list[int]) -> InvalidInput:
        return InvalidInput("raw records are invalid: the use case's transform keeps no row for them "
                            "(its WHERE clause filters them out)", problems=[f"[{i}]: dropped" for i in rows[:20]])

    def features(self, data: pa.Table, first_row: int = 0) -> pa.Table:
        """The model's features of raw records, checked by the model's rules (rows numbered from
        ``first_row``); a record the transform's filter drops is refused by its row."""
        treated = self.treated(data)
        if treated.num_rows != data.num_rows:
            kept = set(treated[ROW].to_pylist())
            raise self.dropped([first_row + i for i in range(data.num_rows) if i not in kept])
        return self.model.table(treated, first_row)


class Contract:
    """What a request may hold, for the wire formats (deploy/protocols.py): the model's features,
    or, when the version carries a pipeline, the raw record, which is treated on the way in.
    Either way the rows come out as checked features, which the model and the log see."""

    def __init__(self, model: Validator, raw: RawPipeline | None) -> None:
        self.model, self.raw = model, raw
        self.names = model.names
        extra = [c for c in raw.validator.columns if c.name not in set(model.names)] if raw else []
        self.columns = [*model.columns, *extra]  # every field's type, for formats that parse text

    def _through(self, fields: set[str], check: str, *args: Any) -> dict[str, list[Any]]:
        assert self.raw is not None
        if not self.raw.is_raw(fields):
            return getattr(self.model, check)(*args)
        columns = getattr(self.raw.validator, check)(*args)
        table = self.raw.features(self.raw.validator.table_of(columns))
        return {n: table.column(n).to_pylist() for n in self.model.names}

    def records(self, records: list[Any]) -> dict[str, list[Any]]:
        if self.raw is None:  # the hot path of a model without a pipeline: nothing more to decide
            return self.model.records(records)
        return self._through({k for r in records if isinstance(r, dict) for k in r}, "records", records)

    def columns_of(self, columns: dict[str, Any]) -> dict[str, list[Any]]:
        if self.raw is None:
            return self.model.columns_of(columns)
        return self._through(set(columns), "columns_of", columns)

    def rows_of(self, rows: list[Any], names: list[str] | None = None) -> dict[str, list[Any]]:
        if self.raw is None:
            return self.model.rows_of(rows, names)
        return self._through(set(names or self.names), "rows_of", rows, names)

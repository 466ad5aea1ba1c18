"""Helpers of the Data phase's tests: change the stored use case, ingest, list files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from valueloop.config import Settings


#: customers in the small CRM export the security tests start from
SMALL_EXPORT = 300


def churn_with_export(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]],
                      rows: int) -> Path:
    """The approved churn use case (the demo's first chapter) with a CRM export of ``rows``
    customers in its project folder; returns the folder."""
    from valueloop.examples import load_generator

    _, project = approved_usecase(settings)
    load_generator("churn").write(project / "data", rows=rows, seed=7)
    return project


def update(settings: Settings, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the stored churn spec (as JSON) and save it as ana would."""
    import copy

    from valueloop.outcomes import usecases
    from valueloop.outcomes.spec import parse_spec
    from valueloop.store import session

    with session(settings) as s:
        data = copy.deepcopy(usecases.get_usecase(s, "churn").spec)
    change(data)
    with session(settings) as s:
        usecases.update_usecase(s, "ana", parse_spec(data))


def ingest(settings: Settings, project: Path, **options: Any) -> Any:
    from valueloop import data
    from valueloop.store import session

    with session(settings) as s:
        return data.ingest(s, settings, "dave", "churn", project_dir=project, **options)


def read(settings: Settings, version: int | None = None) -> pa.Table:
    from valueloop import data
    from valueloop.store import session

    with session(settings) as s:
        return data.read_version(s, "churn", version)


def versions(settings: Settings) -> list[int]:
    from valueloop import data
    from valueloop.store import session

    with session(settings) as s:
        return [v.version for v in data.list_versions(s, "churn")]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def add_rows(csv: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows to the export, keeping its columns."""
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(csv)
    extra = pa.Table.from_pylist(rows, schema=table.schema)
    pacsv.write_csv(pa.concat_tables([table, extra]), csv)


def approve(settings: Settings) -> None:
    """pia approves the pending DPIA with the demo's condition: postcodes cut to two characters."""
    from valueloop.outcomes import privacy
    from valueloop.outcomes.spec import ColumnTreatment
    from valueloop.store import session

    region = ColumnTreatment(column="postcode", treatment="generalize", params={"prefix": 2})
    with session(settings) as s:
        privacy.approve(s, "pia", "churn", [region])


def personal(column: str, treatment: str, **params: Any) -> Callable[[dict[str, Any]], None]:
    """A change to the spec that declares one more personal column with its treatment."""

    def change(spec: dict[str, Any]) -> None:
        spec["privacy"]["columns"].append({
            "column": column, "category": "other", "purpose": "churn factor", "legal_basis": "contract",
            "retention": "730d", "treatment": treatment, "params": params,
            "justification": "a model input",
        })

    return change

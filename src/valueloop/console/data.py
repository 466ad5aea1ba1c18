"""The Data page: a use case's dataset versions, one version's lineage, quality report and
profile, and the diff of two versions; all read from the stored version records."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from valueloop.console import charts
from valueloop.console.web import Number, View
from valueloop.data.diff import diff
from valueloop.data.service import DatasetVersionView, visible_versions
from valueloop.errors import NotFound
from valueloop.outcomes.roles import Action, allows
from valueloop.outcomes.usecases import UseCaseView, get_usecase
from valueloop.outcomes.usecases import view as usecase_view

router = APIRouter()

#: the failing rows a quality check shows at most
SAMPLE_ROWS = 5
#: the commonest values drawn for a categorical column
TOP_VALUES = 8


class VersionRow(BaseModel):
    version: int
    rows: int
    mode: str
    passed: bool
    warnings: int
    dpia_version: int
    actor: str
    created_at: str


class ColumnProfile(BaseModel):
    name: str
    type: str
    nulls: int | None
    distinct: int | None
    stats: dict[str, Any]
    chart: dict[str, Any] | None


class Lineage(BaseModel):
    sources: list[dict[str, Any]]
    treatments: list[dict[str, Any]]
    transform_hash: str
    dpia_version: int


class DataPage(BaseModel):
    usecase: UseCaseView
    versions: list[VersionRow]
    selected: DatasetVersionView | None
    lineage: Lineage | None
    checks: list[dict[str, Any]]
    columns: list[ColumnProfile]
    diff: dict[str, Any] | None
    may_ingest: bool


def _row(v: DatasetVersionView) -> VersionRow:
    return VersionRow(version=v.version, rows=v.row_count, mode=v.mode, passed=bool(v.quality.get("passed")),
                      warnings=int(v.quality.get("warnings", 0)), dpia_version=v.dpia_version, actor=v.actor,
                      created_at=f"{v.created_at:%Y-%m-%d %H:%M}")


def _lineage(v: DatasetVersionView) -> Lineage:
    sources = [{"name": name, "kind": f.get("kind", ""), "digest": f.get("digest", ""), "rows": f.get("rows")}
               for name, f in v.source_fingerprints.items()]
    treatments = [{"column": column, "treatment": t.get("treatment", ""),
                   "params": ", ".join(f"{k}={p}" for k, p in (t.get("params") or {}).items())}
                  for column, t in v.treatments.items()]
    return Lineage(sources=sources, treatments=treatments, transform_hash=v.transform_hash,
                   dpia_version=v.dpia_version)


def _column(name: str, stats: dict[str, Any]) -> ColumnProfile:
    chart = None
    if stats.get("histogram", {}).get("counts"):
        chart = charts.histogram(stats["histogram"]["edges"], stats["histogram"]["counts"], name)
    elif stats.get("top_values"):
        chart = charts.top_values([(t["value"], t["count"]) for t in stats["top_values"][:TOP_VALUES]], name)
    shown = {k: stats[k] for k in ("min", "max", "mean", "std") if stats.get(k) is not None}
    return ColumnProfile(name=name, type=str(stats.get("type", "")), nulls=stats.get("nulls"),
                         distinct=stats.get("distinct"), stats=shown, chart=chart)


def _pick(versions: list[DatasetVersionView], number: int, field: str) -> DatasetVersionView:
    for v in versions:
        if v.version == number:
            return v
    known = ", ".join(str(v.version) for v in versions) or "none yet"
    raise NotFound(f"{field}: use case '{versions[0].usecase if versions else ''}' has no dataset version "
                   f"{number}; versions: {known}")


def build(view: View, usecase: str, version: int | None = None, compare: int | None = None) -> DataPage:
    """The page's figures for a member of the use case; ``compare`` diffs that version against
    the selected one."""
    versions = visible_versions(view.s, view.name, usecase)
    found = get_usecase(view.s, usecase)
    allowed, shown = allows(view.s, view.user, Action.ingest, found), usecase_view(found)
    if not versions:
        return DataPage(usecase=shown, versions=[], selected=None, lineage=None, checks=[], columns=[],
                        diff=None, may_ingest=allowed)
    selected = versions[-1] if version is None else _pick(versions, version, "version")
    checks = [c | {"sample": c.get("sample", [])[:SAMPLE_ROWS]} for c in selected.quality.get("checks", [])]
    columns = [_column(n, s) for n, s in selected.profile.get("columns", {}).items()]
    changed = None
    if compare is not None:
        changed = diff(_pick(versions, compare, "compare"), selected)
    return DataPage(usecase=shown, versions=[_row(v) for v in reversed(versions)], selected=selected,
                    lineage=_lineage(selected), checks=checks, columns=columns, diff=changed,
                    may_ingest=allowed)


@router.get("/usecases/{name}/data")
def page(name: str, view: View, version: Number = None, compare: Number = None) -> Response:
    return view.render("data.html", build(view, name, version, compare), nav="usecases")

"""The privacy page: DPIA versions, the personal columns with what happens to each, the
difference between two versions, the privacy officer's decision form, and the recorded erasures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.datastructures import FormData

from valueloop.console.web import Form, Problems, View, etag_of, text
from valueloop.errors import InvalidInput, NotFound
from valueloop.operate import erasure
from valueloop.outcomes import privacy, usecases
from valueloop.outcomes.privacy import AssessmentView, Status
from valueloop.outcomes.roles import Action, allows
from valueloop.outcomes.spec import ColumnTreatment, Treatment

router = APIRouter()

#: what the diff compares of a personal column
_COMPARED = ("category", "purpose", "legal_basis", "retention", "treatment", "params", "justification")


class ColumnRow(BaseModel):
    column: str
    category: str
    purpose: str
    legal_basis: str
    retention: str
    proposed: str
    condition: str | None
    params: dict[str, Any]


class Change(BaseModel):
    column: str
    field: str
    before: str | None
    after: str | None


class Diff(BaseModel):
    old: int
    new: int
    changes: list[Change]
    summary: str


class PrivacyPage(BaseModel):
    usecase: usecases.UseCaseView
    versions: list[AssessmentView]
    shown: AssessmentView | None
    columns: list[ColumnRow]
    diff: Diff | None
    may_decide: bool
    treatments: list[Treatment]
    #: the ledger's entries, by token only, each with the models it still awaits the retraining of
    erasures: list[erasure.ErasureView]
    etag: str


def _treatment(t: ColumnTreatment) -> str:
    params = ", ".join(f"{k}={v}" for k, v in t.params.items())
    return f"{t.treatment.value}({params})" if params else t.treatment.value


def _columns(a: AssessmentView) -> list[ColumnRow]:
    conditions = {c.column: c for c in a.conditions}
    return [ColumnRow(column=c.column, category=c.category, purpose=c.purpose, legal_basis=c.legal_basis,
                      retention=c.retention, proposed=_treatment(c), params=c.params,
                      condition=_treatment(conditions[c.column]) if c.column in conditions else None)
            for c in a.content.columns]


def _diff(old: AssessmentView, new: AssessmentView) -> Diff:
    before = {c.column: c.model_dump(mode="json") for c in old.content.columns}
    after = {c.column: c.model_dump(mode="json") for c in new.content.columns}
    changes = []
    for column in sorted(set(before) | set(after)):
        was, now = before.get(column, {}), after.get(column, {})
        for field in _COMPARED:
            if was.get(field) != now.get(field):
                changes.append(Change(column=column, field=field,
                                      before=None if field not in was else str(was[field]),
                                      after=None if field not in now else str(now[field])))
    for field in ("description", "purpose", "necessity"):
        if getattr(old.content, field) != getattr(new.content, field):
            changes.append(Change(column="(assessment)", field=field, before=getattr(old.content, field),
                                  after=getattr(new.content, field)))
    summary = privacy.describe_change(old.content.model_dump(mode="json"), new.content.model_dump(mode="json"))
    return Diff(old=old.version, new=new.version, changes=changes, summary=summary)


def _version(versions: list[AssessmentView], number: int, name: str) -> AssessmentView:
    found = [a for a in versions if a.version == number]
    if not found:
        known = ", ".join(f"v{a.version}" for a in versions) or "none yet"
        raise NotFound(f"DPIA v{number} of '{name}' does not exist; versions: {known}")
    return found[0]


def _page(view: View, name: str, v: int | None = None, old: int | None = None) -> PrivacyPage:
    summary = usecases.view(usecases.get_usecase(view.s, name))
    versions = privacy.history(view.s, view.name, name)
    shown = _version(versions, v, name) if v else (versions[-1] if versions else None)
    diff = None
    if shown is not None and (old or shown.version > 1):
        diff = _diff(_version(versions, old or shown.version - 1, name), shown)
    latest = versions[-1] if versions else None
    may = (latest is not None and latest.status is Status.pending and shown == latest
           and allows(view.s, view.user, Action.decide_privacy, usecases.get_usecase(view.s, name)))
    return PrivacyPage(usecase=summary, versions=versions, shown=shown, columns=_columns(shown) if shown else [],
                       diff=diff, may_decide=may, treatments=list(Treatment),
                       erasures=erasure.views(view.s, view.settings, name), etag=etag_of(*versions))


Version = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


def _show(view: View, name: str, problems: Problems | None = None, v: int | None = None,
          old: int | None = None) -> Response:
    return view.render("privacy.html", _page(view, name, v, old), problems=problems, nav="usecases")


@router.get("/usecases/{name}/privacy")
def privacy_page(name: str, view: View, v: Version = None, old: Version = None) -> Response:
    return _show(view, name, v=v, old=old)


def _conditions(form: FormData, page: PrivacyPage) -> list[ColumnTreatment]:
    """One condition per column whose treatment picker names one, with its params."""
    conditions, problems = [], []
    for row in page.columns:
        treatment = text(form, f"treatment-{row.column}")
        if not treatment:
            continue
        try:
            conditions.append(privacy.condition_of(row.column, treatment, text(form, f"params-{row.column}"),
                                                   row.column))
        except InvalidInput as exc:
            problems.append(f"{row.column}: " + "; ".join(p.partition(": ")[2] or p for p in exc.problems))
    if problems:
        raise InvalidInput("conditions are invalid:", problems=problems)
    return conditions


@router.post("/usecases/{name}/privacy/approve")
def approve(name: str, view: View, form: Form) -> Response:
    page = _page(view, name)
    view.fresh(form, page.etag, f"the DPIA of '{name}'")
    def again(problems: Problems) -> Response:
        return _show(view, name, problems)

    fields = {row.column for row in page.columns}
    try:
        conditions = _conditions(form, page)
    except InvalidInput as exc:
        return view.refused(exc, again, fields)
    comment = text(form, "comment") or None
    return view.attempt(lambda s: privacy.approve(s, view.name, name, conditions, comment),
                        f"/usecases/{name}/privacy", again, fields)


@router.post("/usecases/{name}/privacy/reject")
def reject(name: str, view: View, form: Form) -> Response:
    view.fresh(form, _page(view, name).etag, f"the DPIA of '{name}'")
    return view.attempt(lambda s: privacy.reject(s, view.name, name, text(form, "reason")),
                        f"/usecases/{name}/privacy", lambda problems: _show(view, name, problems), {"reason"})

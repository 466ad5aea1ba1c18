"""Use case pages: the list, a new use case from its file, one use case (goal, people, lifecycle
with its allowed moves, KPI outcomes, cycles) and the editing of its ``valueloop.yaml``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile

from valueloop.console.kpi_series import KpiSeries, kpi_chart, kpi_series
from valueloop.console.web import Form, Problems, View, as_yaml, etag_of, text
from valueloop.errors import InvalidInput
from valueloop.outcomes import privacy, usecases
from valueloop.outcomes.lifecycle import OWNED_BY_COMMAND, TRANSITIONS, State
from valueloop.outcomes.roles import Action, Role, allows, roles_of
from valueloop.outcomes.spec import MAX_FILE_BYTES, UseCaseSpec, parse_spec, parse_yaml

router = APIRouter()

#: the name an edited or uploaded file goes by in its problems, as the CLI names the file it read
FILE = "valueloop.yaml"


class UseCaseList(BaseModel):
    usecases: list[usecases.UseCaseView]


class Move(BaseModel):
    """A lifecycle move the viewer may make from the current state."""

    state: State
    label: str


class UseCasePage(BaseModel):
    usecase: usecases.UseCaseDetail
    members_by_role: dict[Role, list[str]]
    my_roles: list[Role]
    moves: list[Move]
    may_submit_privacy: bool
    may_record_kpis: bool
    may_edit: bool
    kpi_series: list[KpiSeries]
    charts: dict[str, Any]
    etag: str


class FilePage(BaseModel):
    """The use case file as text, for editing (or empty, for a new use case)."""

    name: str | None
    text: str
    etag: str


_LABELS = {State.formulated: "Mark formulated", State.draft: "Back to draft",
           State.in_development: "Start development", State.in_production: "Put in production",
           State.in_review: "Move to review", State.retired: "Retire"}


def _page(view: View, name: str) -> UseCasePage:
    detail = usecases.show_usecase(view.s, view.name, name)
    row = usecases.get_usecase(view.s, name)
    mine = roles_of(view.s, view.user, row)
    series = kpi_series(view.s, row.name, detail.kpis, detail.cycles)
    moves = [Move(state=to, label=_LABELS.get(to, to.value)) for (frm, to), action in TRANSITIONS.items()
             if frm is detail.state and to not in OWNED_BY_COMMAND and allows(view.s, view.user, action, row)]
    return UseCasePage(
        usecase=detail, members_by_role=usecases.members_by_role(row), my_roles=sorted(mine), moves=moves,
        may_submit_privacy=detail.state is State.formulated and allows(view.s, view.user, Action.submit_privacy, row),
        may_record_kpis=bool(detail.cycles) and allows(view.s, view.user, Action.review, row),
        may_edit=detail.state is not State.retired and bool(mine - {Role.admin, Role.privacy_officer}),
        kpi_series=series, charts={f"kpi-{k.name}": kpi_chart(k) for k in series if k.points},
        etag=etag_of(detail),
    )


def _show(view: View, name: str, problems: Problems | None = None) -> Response:
    return view.render("usecase.html", _page(view, name), problems=problems, nav="usecases")


@router.get("/usecases")
def usecase_list(view: View) -> Response:
    page = UseCaseList(usecases=usecases.list_usecases(view.s, view.name))
    return view.render("usecases.html", page, nav="usecases")


@router.get("/usecases/new")
def new_usecase(view: View) -> Response:
    return view.render("usecase_file.html", FilePage(name=None, text="", etag=""), nav="usecases")


async def _spec(form: FormData) -> UseCaseSpec:
    """The file of the form: an uploaded one, else the text box; checked as the CLI checks it."""
    upload = form.get("upload")
    if isinstance(upload, UploadFile) and upload.filename:
        content = await upload.read(MAX_FILE_BYTES + 1)
        origin = upload.filename
    else:
        content, origin = text(form, "spec").encode(), FILE
    if not content.strip():
        raise InvalidInput(f"{origin}: empty; paste the use case file or choose one to upload")
    return parse_spec(parse_yaml(content, origin), origin)


def _file_again(view: View, name: str | None, form: FormData, etag: str) -> Callable[[Problems], Response]:
    def again(problems: Problems) -> Response:
        page = FilePage(name=name, text=text(form, "spec"), etag=etag)
        return view.render("usecase_file.html", page, problems={"spec": sum(problems.values(), [])},
                           nav="usecases")
    return again


@router.post("/usecases/new")
async def create(view: View, form: Form) -> Response:
    again = _file_again(view, None, form, "")
    try:
        spec = await _spec(form)
    except InvalidInput as exc:
        return view.refused(exc, again)
    return view.attempt(lambda s: usecases.create_usecase(s, view.name, spec), f"/usecases/{spec.name}", again)


@router.get("/usecases/{name}")
def usecase_page(name: str, view: View) -> Response:
    return _show(view, name)


@router.post("/usecases/{name}/advance")
def advance(name: str, view: View, form: Form) -> Response:
    view.fresh(form, _page(view, name).etag, f"use case '{name}'")
    target = text(form, "state")
    if target not in State.__members__:
        raise InvalidInput(f"state: '{target}' is not a lifecycle state; one of {', '.join(State)}")
    reason = text(form, "reason") or None
    return view.attempt(lambda s: usecases.advance(s, view.name, name, State(target), reason),
                        f"/usecases/{name}", lambda p: _show(view, name, p), {"reason"})


@router.post("/usecases/{name}/privacy/submit")
def submit_privacy(name: str, view: View, form: Form) -> Response:
    view.fresh(form, _page(view, name).etag, f"use case '{name}'")
    return view.attempt(lambda s: privacy.submit(s, view.name, name), f"/usecases/{name}/privacy",
                        lambda p: _show(view, name, p))


def _kpi_values(form: FormData, page: UseCasePage) -> dict[str, float]:
    values, problems = {}, []
    for kpi in page.usecase.kpis:
        raw = text(form, f"kpi-{kpi.name}")
        if not raw:
            continue
        try:
            values[kpi.name] = float(raw)
        except ValueError:
            problems.append(f"{kpi.name}: expected a number, got {raw!r}")
    if problems:
        raise InvalidInput("KPI values are invalid:", problems=problems)
    if not values:
        raise InvalidInput("kpis: enter the measured value of at least one KPI")
    return values


@router.post("/usecases/{name}/outcomes")
def record_outcomes(name: str, view: View, form: Form) -> Response:
    page = _page(view, name)
    view.fresh(form, page.etag, f"use case '{name}'")
    fields = {k.name for k in page.usecase.kpis} | {"kpis"}
    try:
        values = _kpi_values(form, page)
    except InvalidInput as exc:
        return view.refused(exc, lambda p: _show(view, name, p), fields)
    return view.attempt(lambda s: usecases.record_outcomes(s, view.name, name, values),
                        f"/usecases/{name}", lambda p: _show(view, name, p), fields)


@router.get("/usecases/{name}/edit")
def edit_page(name: str, view: View) -> Response:
    page = _page(view, name)
    return view.render("usecase_file.html", FilePage(name=name, text=as_yaml(page.usecase.spec), etag=page.etag),
                       nav="usecases")


@router.post("/usecases/{name}/edit")
async def edit(name: str, view: View, form: Form) -> Response:
    etag = _page(view, name).etag
    view.fresh(form, etag, f"use case '{name}'")
    again = _file_again(view, name, form, etag)
    try:
        spec = await _spec(form)
        if spec.name != name:
            raise InvalidInput(f"name: the file names '{spec.name}' but this is use case '{name}'; "
                               "a use case is never renamed")
    except InvalidInput as exc:
        return view.refused(exc, again)
    return view.attempt(lambda s: usecases.update_usecase(s, view.name, spec), f"/usecases/{name}", again)

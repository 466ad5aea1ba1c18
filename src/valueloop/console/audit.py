"""The audit page: the trail the viewer may read, filtered by use case, actor, action and time,
and the same selection as CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from valueloop.console.web import View
from valueloop.errors import InvalidInput
from valueloop.outcomes import audit
from valueloop.outcomes.usecases import list_usecases
from valueloop.server.deps import Moment
from valueloop.validation import describe_errors

router = APIRouter()

#: the newest events a page shows; the CSV export has them all
SHOWN = 200


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


Text = Annotated[str | None, BeforeValidator(_blank_is_none)]
When = Annotated[Moment | None, BeforeValidator(_blank_is_none)]


class AuditFilter(BaseModel):
    """The filter form as sent: a blank field filters nothing; times without a zone are UTC."""

    usecase: Text = None
    actor: Text = None
    action: Text = Field(None, description="a prefix: 'privacy.' finds every DPIA event")
    since: When = None
    until: When = None


class AuditPage(BaseModel):
    filter: AuditFilter
    usecases: list[str]
    matched: int
    events: list[audit.AuditEntry]


FIELDS = frozenset(AuditFilter.model_fields)


def _filter(request: Request) -> AuditFilter:
    try:
        return AuditFilter.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise InvalidInput("the audit filter is invalid:", problems=describe_errors(exc)) from None


def _trail(view: View, chosen: AuditFilter) -> list[audit.AuditEntry]:
    return audit.trail(view.s, view.name, usecase=chosen.usecase, actor=chosen.actor, action=chosen.action,
                       since=chosen.since, until=chosen.until)


@router.get("/audit")
def audit_page(view: View) -> Response:
    names = [u.name for u in list_usecases(view.s, view.name)]
    try:
        chosen = _filter(view.request)
    except InvalidInput as exc:
        empty = AuditPage(filter=AuditFilter(), usecases=names, matched=0, events=[])
        return view.refused(exc, lambda p: view.render("audit.html", empty, problems=p, nav="audit"), FIELDS)
    found = _trail(view, chosen)
    page = AuditPage(filter=chosen, usecases=names, matched=len(found), events=found[::-1][:SHOWN])
    return view.render("audit.html", page, nav="audit")


@router.get("/audit.csv")
def audit_csv(view: View) -> Response:
    """Every matching event, oldest first, one row each; before and after as JSON."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "actor", "action", "object_type", "object_id", "usecase", "before", "after"])
    for e in _trail(view, _filter(view.request)):
        writer.writerow([e.id, e.at.isoformat(), e.actor, e.action, e.object_type, e.object_id, e.usecase or "",
                         json.dumps(e.before) if e.before is not None else "",
                         json.dumps(e.after) if e.after is not None else ""])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="valueloop-audit.csv"'})

"""``valueloop labels list|correct|delete``: the ground truth the monitor and retraining use."""

from __future__ import annotations

import json
from typing import Any

import typer

from valueloop.cli._common import JsonOption, console, group, show, table
from valueloop.cli.remote import Route, answer, segment, served

app = group("Labels of logged predictions: list them, correct or withdraw a wrong one (audited).")


def _route(usecase: str, request_id: str | None = None) -> str:
    path = f"/api/usecases/{segment(usecase)}/labels"
    return path if request_id is None else f"{path}/{segment(request_id)}"


def _value(text: str) -> Any:
    """A label as typed: JSON when it reads as JSON (``1``, ``0.5``, ``true``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@app.command("list")
@served
def labels_list(
    ctx: typer.Context,
    usecase: str,
    bad: bool = typer.Option(False, "--bad", help="Only labels that break the target's rule."),
    request_id: str = typer.Option(None, "--request-id", help="Only this request's label."),
    as_json: bool = JsonOption,
) -> None:
    """The current label of every labeled request, oldest first, with who sent it."""
    from valueloop.config import load_settings
    from valueloop.deploy.labels import LabelView, list_labels

    rows = answer(ctx, Route("GET", _route(usecase), params={"bad": bad or None, "request_id": request_id}),
                  list[LabelView], lambda who: list_labels(load_settings(), who, usecase, bad=bad,
                                                           request_id=request_id))
    show(rows, as_json, lambda: table(
        f"labels of {usecase}", ["request id", "label", "labeled by", "at", "problem"],
        [(r.request_id, repr(r.label), r.labeled_by, f"{r.ts:%Y-%m-%d %H:%M:%S}", r.problem) for r in rows]))


@app.command("correct")
@served
def labels_correct(
    ctx: typer.Context,
    usecase: str,
    request_id: str,
    label: str = typer.Argument(..., help="The right label (read as JSON when it parses: 1, 0.5, true)."),
    as_json: bool = JsonOption,
) -> None:
    """Replace a request's label, checked against the target (data scientist or operations)."""
    from valueloop.config import load_settings
    from valueloop.deploy.labels import LabelView, correct_label

    value = _value(label)
    row = answer(ctx, Route("PUT", _route(usecase, request_id), json={"label": value}), LabelView,
                 lambda who: correct_label(load_settings(), who, usecase, request_id, value))
    show(row, as_json, lambda: console().print(
        f"label of {row.request_id} is now {row.label!r} (by {row.labeled_by})", markup=False))


@app.command("delete")
@served
def labels_delete(ctx: typer.Context, usecase: str, request_id: str, as_json: bool = JsonOption) -> None:
    """Withdraw a request's label: monitoring and retraining stop using it (data scientist or
    operations)."""
    from valueloop.config import load_settings
    from valueloop.deploy.labels import LabelView, delete_label

    row = answer(ctx, Route("DELETE", _route(usecase, request_id)), LabelView,
                 lambda who: delete_label(load_settings(), who, usecase, request_id))
    show(row, as_json, lambda: console().print(
        f"label {row.label!r} of {row.request_id} withdrawn", markup=False))

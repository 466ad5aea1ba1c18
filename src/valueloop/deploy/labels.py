"""Ground-truth labels of logged predictions: received (``/feedback``), read back for the
monitor and retraining, listed, corrected and withdrawn.

Labels live beside the prediction log, in ``labels/part-*.parquet`` files written once each. A
later label of a request id replaces the earlier one; a null label withdraws it (only
:func:`delete_label` writes one). Every label is checked against the use case's target
(:mod:`valueloop.deploy.label_rule`) when it arrives and again when it is read, so one bad label
or one damaged file is reported and left out, never the reason the monitor fails.

A request of several rows is logged row by row as ``<request_id>/<row>``: its labels name the
request id and the row (``{"request_id": ..., "row": 2, "label": ...}``), or the row's id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from valueloop.config import Settings
from valueloop.deploy.label_rule import LabelRule, rule_for
from valueloop.deploy.predlog import PredictionLog, _parts, _write_atomically
from valueloop.errors import InvalidInput, NotFound
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.usecases import get_usecase, viewed
from valueloop.outcomes.users import get_user
from valueloop.storage import Location
from valueloop.store import session as open_session

#: how many bad labels a report names before it counts the rest
_NAMED = 10


def row_id(request_id: str, row: int | None) -> str:
    """The id the log holds for row ``row`` of a request (the request id itself for one row)."""
    return request_id if row is None else f"{request_id}/{row}"


class FeedbackResult(BaseModel):
    usecase: str
    recorded: int
    unknown: list[str]


class LabelView(BaseModel):
    request_id: str
    label: Any
    ts: datetime
    labeled_by: str | None
    #: why the stored label breaks the target's rule (it is left out until corrected), or None
    problem: str | None = None


@dataclass
class Labels:
    """The current label of every labeled request, and what could not be used."""

    views: dict[str, LabelView] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> dict[str, Any]:
        """Request id → label, the labels the monitor and retraining may use."""
        return {r: v.label for r, v in self.views.items() if v.problem is None}


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else repr(value)[:200]


def read(root: Location, rule: LabelRule) -> Labels:
    """Every label file under ``root`` read one at a time: a file that cannot be read is named in
    ``problems`` and skipped; a label that breaks ``rule`` is kept with its problem."""
    import pyarrow.parquet as pq

    found = Labels()
    rows: list[tuple[datetime, str, Any, str | None]] = []
    for path in _parts(root):
        try:
            table = pq.read_table(path.path, filesystem=path.filesystem)
            missing = {"request_id", "label", "ts"} - set(table.column_names)
            if missing:
                raise ValueError(f"missing column(s) {', '.join(sorted(missing))}")
            by = table["labeled_by"].to_pylist() if "labeled_by" in table.column_names else [None] * table.num_rows
            rows += zip(table["ts"].to_pylist(), table["request_id"].to_pylist(), table["label"].to_pylist(), by)
        except Exception as exc:  # noqa: BLE001 - any damage to one file leaves the others usable
            found.problems.append(f"label file {path} was skipped: {str(exc)[:200]}")
    for ts, request_id, label, by in sorted(rows, key=lambda r: r[0]):
        if label is None:
            found.views.pop(request_id, None)
            continue
        stored, problem = rule.check(label)
        found.views[request_id] = LabelView(request_id=request_id, label=_plain(label if problem else stored),
                                            ts=ts, labeled_by=by, problem=problem)
    bad = [v for v in found.views.values() if v.problem]
    found.problems += [f"label of request {v.request_id!r:.80}: {v.problem}; left out (correct it with "
                       "`valueloop labels correct` or withdraw it with `valueloop labels delete`)"
                       for v in bad[:_NAMED]]
    if len(bad) > _NAMED:
        found.problems.append(f"{len(bad) - _NAMED} more bad label(s): `valueloop labels list --bad` shows them")
    return found


def current(settings: Settings, usecase: str) -> Labels:
    """The labels of a use case, checked against its rule (the monitor, retraining)."""
    with open_session(settings) as s:
        rule = rule_for(s, usecase)
    return read(PredictionLog(settings, usecase).root.child("labels"), rule)


def _store(root: Location, rule: LabelRule, pairs: list[tuple[str, Any]], by: str) -> None:
    import pyarrow as pa

    n = len(pairs)
    _write_atomically(pa.table({
        "request_id": pa.array([r for r, _ in pairs], pa.string()),
        "label": pa.array([lab for _, lab in pairs], rule.arrow_type()),
        "ts": pa.repeat(pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC")), n),
        "labeled_by": pa.repeat(pa.scalar(by), n),
    }), root)


def _checked(rule: LabelRule, pairs: list[tuple[Any, Any]], known: set[str]) -> list[tuple[str, Any]]:
    """The pairs with each label as stored, or InvalidInput naming every bad one."""
    problems, stored = [], []
    for i, (request_id, label) in enumerate(pairs):
        if not isinstance(request_id, str) or not request_id:
            problems.append(f"[{i}].request_id: expected a non-empty string, got {request_id!r:.60}")
        elif request_id not in known and f"{request_id}/0" in known:
            problems.append(f"[{i}].request_id: request {request_id!r:.60} had several rows; name the row "
                            f"(\"row\": 0, 1, ...) or its id ({request_id!r:.60}/0, ...)")
        value, problem = rule.check(label)
        if problem is not None:
            problems.append(f"[{i}].label: {problem}")
        stored.append((request_id, value))
    if problems:
        raise InvalidInput(f"feedback is invalid ({len(problems)} problem(s)); nothing was stored:", problems=problems)
    return stored


def record_feedback(settings: Settings, actor: str, usecase: str,
                    labels: Iterable[tuple[str, Any]]) -> FeedbackResult:
    """Store ground-truth labels for logged predictions, with who sent them, who must hold the
    label permission (:attr:`Action.label`): labels drive monitoring and retraining. Every label
    is checked against the target first; one bad label stores nothing. Labels for request ids
    the log does not hold are returned in ``unknown``, so the caller can resend them later (a
    prediction reaches the log within the logger's flush interval)."""
    with open_session(settings) as s:
        who = get_user(s, actor)
        require(s, who, Action.label, get_usecase(s, usecase))
        rule = rule_for(s, usecase)
    plog = PredictionLog(settings, usecase)
    known = plog.request_ids()
    pairs = _checked(rule, list(labels), known)
    accepted = [(r, lab) for r, lab in pairs if r in known]
    if accepted:
        _store(plog.root.child("labels"), rule, accepted, who.name)
    return FeedbackResult(usecase=usecase, recorded=len(accepted), unknown=[r for r, _ in pairs if r not in known])


def list_labels(settings: Settings, actor: str | None, usecase: str, *, bad: bool = False,
                request_id: str | None = None) -> list[LabelView]:
    """The current labels, oldest first (only those that break the target's rule with ``bad``);
    any member may read them."""
    with open_session(settings) as s:
        viewed(s, actor, usecase)
        rule = rule_for(s, usecase)
    views = read(PredictionLog(settings, usecase).root.child("labels"), rule).views.values()
    return [v for v in views if (not bad or v.problem) and (request_id is None or v.request_id == request_id)]


def _change(settings: Settings, actor: str | None, usecase: str, request_id: str,
            label: Any) -> tuple[LabelView, LabelView]:
    """Replace (or, with None, withdraw) the current label of ``request_id``: data scientists and
    operations only, audited with the label before and after. Returns (before, after)."""
    with open_session(settings) as s:
        who = get_user(s, actor)
        require(s, who, Action.manage_labels, get_usecase(s, usecase))
        rule = rule_for(s, usecase)
        root = PredictionLog(settings, usecase).root.child("labels")
        before = read(root, rule).views.get(request_id)
        if before is None:
            raise NotFound(f"request_id: {request_id!r:.80} has no label in '{usecase}'; "
                           "`valueloop labels list` shows the labeled requests")
        after = None
        if label is not None:
            ((_, after),) = _checked(rule, [(request_id, label)], {request_id})
        audit.record(s, who.name, "label.correct" if label is not None else "label.delete", "label", request_id,
                     usecase=usecase, before={"label": before.label, "labeled_by": before.labeled_by},
                     after=None if after is None else {"label": after})
        _store(root, rule, [(request_id, after)], who.name)
    return before, LabelView(request_id=request_id, label=after, ts=datetime.now(UTC), labeled_by=who.name)


def correct_label(settings: Settings, actor: str | None, usecase: str, request_id: str, label: Any) -> LabelView:
    """Replace a request's label with ``label``, checked against the target; returns the new one."""
    if label is None:
        raise InvalidInput("label: required, got null; `valueloop labels delete` withdraws a label")
    return _change(settings, actor, usecase, request_id, label)[1]


def delete_label(settings: Settings, actor: str | None, usecase: str, request_id: str) -> LabelView:
    """Withdraw a request's label (the monitor and retraining no longer use it); returns it."""
    return _change(settings, actor, usecase, request_id, None)[0]

"""The Data Privacy Impact Assessment: versions, the privacy officer's decision, and the gate.

Later phases call :func:`require_privacy_approval` before touching data; it returns the column
treatments they must apply (the proposal, overridden by the officer's conditions).
"""

from __future__ import annotations

import functools
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Select, bindparam, select
from sqlalchemy.orm import Session

from valueloop.errors import Conflict, GateClosed, InvalidInput
from valueloop.outcomes import audit
from valueloop.outcomes.ai import RiskClass
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import ColumnTreatment, Privacy, digest_of
from valueloop.outcomes.usecases import get_usecase, set_state, spec_of, viewed
from valueloop.outcomes.users import get_user
from valueloop.store.models import PrivacyAssessment, UseCase, utcnow
from valueloop.validation import describe_errors


class Status(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    superseded = "superseded"


#: states in which the team is still formulating; the DPIA follows the file at submission
_UNSUBMITTED = frozenset({State.draft, State.formulated, State.rejected})


class AssessmentView(BaseModel):
    usecase: str
    version: int
    status: Status
    content: Privacy
    submitted_by: str
    submitted_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    conditions: list[ColumnTreatment]
    comment: str | None

    @property
    def treatments(self) -> dict[str, ColumnTreatment]:
        """The treatment of each personal column: the proposal, overridden by the conditions."""
        effective: dict[str, ColumnTreatment] = {
            c.column: ColumnTreatment(column=c.column, treatment=c.treatment, params=c.params,
                                      justification=c.justification)
            for c in self.content.columns
        }
        effective.update({c.column: c for c in self.conditions})
        return effective


def condition_of(column: str, treatment: str, params: str, field: str) -> ColumnTreatment:
    """The privacy officer's condition on a column from its parts as typed: the params as
    ``KEY=VALUE,...`` (``prefix=2``; ``justification=...`` for keep); refused naming ``field``."""
    values: dict[str, object] = {}
    for item in filter(None, params.split(",")):
        key, _, value = item.partition("=")
        values[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    justification = str(values.pop("justification", ""))
    try:
        return ColumnTreatment(column=column.strip(), treatment=treatment.strip(), params=values,
                               justification=justification)
    except ValidationError as exc:
        raise InvalidInput(f"{field}:", problems=describe_errors(exc)) from None


def _view(a: PrivacyAssessment) -> AssessmentView:
    return AssessmentView(
        usecase=a.usecase.name, version=a.version, status=Status(a.status), content=a.content,
        submitted_by=a.submitted_by, submitted_at=a.submitted_at, decided_by=a.decided_by,
        decided_at=a.decided_at, conditions=a.conditions, comment=a.comment,
    )


def _latest(usecase: UseCase) -> PrivacyAssessment | None:
    return usecase.assessments[-1] if usecase.assessments else None


def treatments_in_force(usecase: UseCase) -> dict[str, ColumnTreatment]:
    """The treatments of the newest approved DPIA (none before one was): what a store may keep of
    each personal column, also while a newer version awaits the privacy officer."""
    approved = [a for a in usecase.assessments if a.status == Status.approved]
    return _view(approved[-1]).treatments if approved else {}


def _new_version(session: Session, actor: str, usecase: UseCase, action: str) -> PrivacyAssessment:
    content = spec_of(usecase).privacy.content()
    latest = _latest(usecase)
    if latest is not None and latest.status == Status.pending:
        latest.status = Status.superseded
    assessment = PrivacyAssessment(
        version=(latest.version + 1) if latest else 1, content=content,
        content_digest=digest_of(content), status=Status.pending, submitted_by=actor, conditions=[],
    )
    usecase.assessments.append(assessment)
    session.flush()
    audit.record(session, actor, action, "dpia", f"{usecase.name}/v{assessment.version}",
                 usecase=usecase.name,
                 before={"version": latest.version, "status": latest.status} if latest else None,
                 after={"version": assessment.version, "status": Status.pending,
                        "content_digest": assessment.content_digest})
    return assessment


def submit(session: Session, actor: str | None, name: str) -> AssessmentView:
    """Submit the use case's privacy section as a new DPIA version for the officer to decide."""
    usecase = get_usecase(session, name)
    acting = get_user(session, actor)
    require(session, acting, Action.submit_privacy, usecase)
    state = State(usecase.state)
    latest = _latest(usecase)
    if state in _UNSUBMITTED - {State.formulated} or (latest is None and state is not State.formulated):
        raise Conflict(f"use case '{name}' is {state}: the DPIA is submitted from formulated")
    digest = digest_of(spec_of(usecase).privacy.content())
    if latest is not None and latest.content_digest == digest and latest.status != Status.rejected:
        raise Conflict(f"DPIA v{latest.version} of '{name}' with this content is already {latest.status}")
    assessment = _new_version(session, acting.name, usecase, "privacy.submit")
    if state is State.formulated:
        set_state(session, acting.name, usecase, State.privacy_review, None)
    return _view(assessment)


def reopen_if_changed(session: Session, actor: str, usecase: UseCase) -> None:
    """After the file changed: a different privacy section needs a new decision."""
    latest = _latest(usecase)
    if latest is None or State(usecase.state) in _UNSUBMITTED:
        return  # the file is still being formulated: the next submission takes it as it is then
    if latest.content_digest != digest_of(spec_of(usecase).privacy.content()):
        _new_version(session, actor, usecase, "privacy.reopen")


def _pending(usecase: UseCase) -> PrivacyAssessment:
    latest = _latest(usecase)
    if latest is None or latest.status != Status.pending:
        shown = f"v{latest.version} is {latest.status}" if latest else "none was submitted"
        raise Conflict(f"no DPIA of '{usecase.name}' awaits a decision ({shown})")
    return latest


def approve(
    session: Session,
    actor: str | None,
    name: str,
    conditions: list[ColumnTreatment] | None = None,
    comment: str | None = None,
) -> AssessmentView:
    """Approve the pending DPIA, optionally with conditions: treatments the Data phase must apply."""
    usecase = get_usecase(session, name)
    acting = get_user(session, actor)
    require(session, acting, Action.decide_privacy, usecase)
    assessment = _pending(usecase)
    ai = assessment.content.get("ai") or {}
    if ai.get("risk") == RiskClass.prohibited:
        raise GateClosed(f"DPIA v{assessment.version} of '{name}': privacy.ai.risk is prohibited, and a "
                         "prohibited AI practice (AI Act Art. 5) cannot be approved; reject it, or the team "
                         "changes the use case")
    conditions = conditions or []
    columns = [c.column for c in conditions]
    if len(set(columns)) != len(columns):
        raise InvalidInput("conditions: one condition per column")
    assessment.status, assessment.decided_by, assessment.decided_at = Status.approved, acting.name, utcnow()
    assessment.conditions = [c.model_dump(mode="json") for c in conditions]
    assessment.comment = comment
    session.flush()
    audit.record(session, acting.name, "privacy.approve", "dpia", f"{name}/v{assessment.version}",
                 usecase=name, before={"status": Status.pending},
                 after={"status": Status.approved, "conditions": assessment.conditions, "comment": comment})
    if State(usecase.state) is State.privacy_review:
        set_state(session, acting.name, usecase, State.approved, comment)
    return _view(assessment)


def reject(session: Session, actor: str | None, name: str, reason: str) -> AssessmentView:
    usecase = get_usecase(session, name)
    acting = get_user(session, actor)
    require(session, acting, Action.decide_privacy, usecase)
    if not reason.strip():
        raise InvalidInput("reason: a rejection must say why, so the team can adjust the use case")
    assessment = _pending(usecase)
    assessment.status, assessment.decided_by, assessment.decided_at = Status.rejected, acting.name, utcnow()
    assessment.comment = reason
    session.flush()
    audit.record(session, acting.name, "privacy.reject", "dpia", f"{name}/v{assessment.version}",
                 usecase=name, before={"status": Status.pending},
                 after={"status": Status.rejected, "reason": reason})
    if State(usecase.state) is State.privacy_review:
        set_state(session, acting.name, usecase, State.rejected, reason)
    return _view(assessment)


def history(session: Session, actor: str | None, name: str) -> list[AssessmentView]:
    return [_view(a) for a in viewed(session, actor, name).assessments]


def require_privacy_approval(session: Session, usecase: UseCase | str) -> AssessmentView:
    """The gate every phase that touches data passes: the newest DPIA version must be approved."""
    if isinstance(usecase, str):
        usecase = get_usecase(session, usecase)
    latest = _latest(usecase)
    if latest is None:
        raise GateClosed(
            f"use case '{usecase.name}' has no DPIA: submit one (`valueloop privacy submit "
            f"{usecase.name}`) and have the privacy officer approve it before touching data"
        )
    if latest.status == Status.pending:
        previous = [a for a in usecase.assessments if a.status == Status.approved]
        changed = ""
        if previous:
            changed = " (" + describe_change(previous[-1].content, latest.content) + ")"
        raise GateClosed(
            f"DPIA v{latest.version} of '{usecase.name}' awaits the privacy officer's decision{changed}"
        )
    if latest.status == Status.rejected:
        raise GateClosed(f"DPIA v{latest.version} of '{usecase.name}' was rejected: {latest.comment}")
    return _view(latest)


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What changed in the personal columns between two DPIA contents, in words."""
    before = {c["column"]: c for c in old.get("columns", [])}
    after = {c["column"]: c for c in new.get("columns", [])}
    parts = []
    if added := sorted(set(after) - set(before)):
        parts.append("added " + ", ".join(added))
    if removed := sorted(set(before) - set(after)):
        parts.append("removed " + ", ".join(removed))
    if changed := sorted(c for c in set(before) & set(after) if before[c] != after[c]):
        parts.append("changed " + ", ".join(changed))
    was, now = old.get("ai") or {}, new.get("ai") or {}
    if was.get("risk") != now.get("risk"):
        parts.append(f"AI risk class {was.get('risk', 'not assessed')} → {now.get('risk', 'not assessed')}")
    elif was != now:
        parts.append("AI assessment changed")
    return "; ".join(parts) or "description changed"


@functools.cache
def _notices_query() -> Select[tuple[str, dict[str, Any]]]:
    """Built once, the use cases' names bound at each call: a serving pool asks every second
    (:func:`valueloop.deploy.pool.registry_state`)."""
    return (select(UseCase.name, PrivacyAssessment.content)
            .join(PrivacyAssessment, PrivacyAssessment.usecase_id == UseCase.id)
            .where(UseCase.name.in_(bindparam("names", expanding=True)), PrivacyAssessment.status == Status.approved)
            .order_by(PrivacyAssessment.version))


def transparency_notices(session: Session | Connection, names: list[str]) -> dict[str, str]:
    """The notice each limited-risk use case's approved DPIA tells people with every prediction."""
    rows = session.execute(_notices_query(), {"names": names}).all()
    newest = dict(rows)  # the newest approved version of each use case comes last
    return {name: ai["transparency_notice"] for name, content in newest.items()
            if (ai := content.get("ai")) and ai["risk"] == RiskClass.limited}

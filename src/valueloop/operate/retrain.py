"""The retraining policy, the loop that closes: a new cycle of the use case, the newest data as a
new dataset version (the DPIA gate checked again by ingest), a challenger trained, tested and
registered, compared with the champion on the same recent labeled predictions, and promoted only
when the policy allows it and the challenger wins by the margin; otherwise the owner is asked.

Each step runs as the automated principal ``policy:retrain``, never as a person who did nothing:
the retraining policy of the use case file, whose powers (auto-promotion, margin, rollout) only the
owner sets, is the standing authorization it acts under, and every step's audit event names it
(the owner and the file's digest) and who asked for the retraining.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.errors import Conflict, InvalidInput, NotFound, ValueloopError
from valueloop.operate.monitor import operate_of
from valueloop.operate.tables import Alert, RetrainRequest
from valueloop.outcomes import audit, usecases
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import LOWER_IS_BETTER, Trigger, UseCaseSpec
from valueloop.outcomes.usecases import get_usecase, spec_of, viewed
from valueloop.outcomes.users import get_user, system_user
from valueloop.store import session as open_session
from valueloop.store.models import utcnow

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("valueloop.retrain")
TRIGGERS: tuple[str, ...] = get_args(Trigger)
#: labeled predictions the comparison uses at most, the newest first
RECENT_LABELS = 20_000
#: a request still running after this was left by a process that died
ABANDONED_AFTER = timedelta(hours=6)


class Step(BaseModel):
    step: str
    at: datetime
    performed_as: str | None
    detail: dict[str, Any]


class RetrainView(BaseModel):
    id: int
    usecase: str
    trigger: str
    requested_by: str
    status: str
    cycle: int | None
    steps: list[Step]
    dataset_version: int | None
    champion_version: str | None
    challenger_version: str | None
    comparison: dict[str, Any] | None
    decision: str | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def error(self) -> str | None:
        """The kind of valueloop error a failed retraining stopped on (``GateClosed``, ...): the
        command line exits with its code."""
        return next((s.detail.get("error") for s in self.steps if s.step == "failed"), None)


def _view(row: RetrainRequest) -> RetrainView:
    return RetrainView.model_validate(row, from_attributes=True)


POLICY = "policy:retrain"


class _Loop:
    """One run of the loop; each step commits on its own and is recorded on the request."""

    def __init__(self, settings: Settings, request_id: int, usecase: str, requested_by: str,
                 authorization: dict[str, str]) -> None:
        self.settings, self.request_id, self.usecase, self.requested_by = settings, request_id, usecase, requested_by
        self.authorization = authorization

    def step(self, name: str, work: Callable[[Session, str], dict[str, Any]]) -> dict[str, Any]:
        with open_session(self.settings) as s:
            detail = work(s, POLICY)
            row = s.get(RetrainRequest, self.request_id)
            assert row is not None
            row.steps = [*row.steps, Step(step=name, at=utcnow(), performed_as=POLICY,
                                          detail=detail).model_dump(mode="json")]
            audit.record(s, self.requested_by, "retrain.step", "retrain", self.request_id, usecase=self.usecase,
                         after={"step": name, "performed_as": POLICY, "authorized_by": self.authorization,
                                **detail})
        log.info("retrain %s #%s: %s %s", self.usecase, self.request_id, name, detail)
        return detail

    def update(self, **fields: Any) -> None:
        with open_session(self.settings) as s:
            row = s.get(RetrainRequest, self.request_id)
            assert row is not None
            for key, value in fields.items():
                setattr(row, key, value)


def _start(settings: Settings, actor: str | None, name: str, trigger: str) -> tuple[int, str]:
    if trigger not in TRIGGERS:
        raise InvalidInput(f"trigger: must be one of {', '.join(TRIGGERS)}, got {trigger!r}")
    with open_session(settings) as s:
        usecase = get_usecase(s, name)
        acting = get_user(s, actor)
        require(s, acting, Action.operate, usecase)
        policy = operate_of(spec_of(usecase)).retrain
        if trigger != "manual" and trigger not in policy.triggers:
            raise Conflict(f"retrain.triggers of '{name}' are {', '.join(policy.triggers)}; "
                           f"trigger {trigger} is not one of them")
        if State(usecase.state) not in (State.in_production, State.in_development):
            raise Conflict(f"'{name}' is {usecase.state}; retraining starts from in_production "
                           "(a new cycle) or in_development (the current one)")
        running = s.scalar(select(RetrainRequest).where(RetrainRequest.usecase == name,
                                                        RetrainRequest.status == "running"))
        if running is not None and utcnow() - running.created_at < ABANDONED_AFTER:
            raise Conflict(f"retraining #{running.id} of '{name}' is still running "
                           f"(since {running.created_at:%Y-%m-%d %H:%M} UTC)")
        if running is not None:  # its process died: say so, and let this one go on
            running.status, running.finished_at = "failed", utcnow()
            running.decision = f"abandoned: still running after {ABANDONED_AFTER}"
            audit.record(s, acting.name, "retrain.finish", "retrain", running.id, usecase=name,
                         after={"status": "failed", "decision": running.decision})
            s.flush()
        row = RetrainRequest(usecase=name, trigger=trigger, requested_by=acting.name, status="running", steps=[])
        s.add(row)
        try:
            s.flush()
        except IntegrityError:  # another process started one between our check and this insert
            raise Conflict(f"a retraining of '{name}' was started at the same moment; it runs, this one "
                           "does not") from None
        audit.record(s, acting.name, "retrain.start", "retrain", row.id, usecase=name,
                     after={"trigger": trigger, "policy": policy.model_dump(mode="json")})
        return row.id, acting.name


def _open_cycle(loop: _Loop, trigger: str) -> Callable[[Session, str], dict[str, Any]]:
    def work(s: Session, who: str) -> dict[str, Any]:
        usecase = get_usecase(s, loop.usecase)
        reason = f"retraining by policy (trigger {trigger}, requested by {loop.requested_by})"
        if State(usecase.state) is State.in_production:
            usecases.advance(s, who, loop.usecase, State.in_review, reason)
            usecases.advance(s, who, loop.usecase, State.in_development, f"next cycle: {reason}")
        return {"state": usecase.state, "cycle": usecase.cycles[-1].number if usecase.cycles else None,
                "reason": reason}
    return work


def _labeled_window(settings: Settings, name: str) -> pa.Table:
    """The newest labeled predictions (the served ones, not shadow), with their label."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from valueloop.deploy.labels import current
    from valueloop.deploy.predlog import PredictionLog

    plog = PredictionLog(settings, name)
    labels = current(settings, name).valid
    log = plog.read()
    if log.num_rows and "source" in log.column_names:
        log = log.filter(pc.not_equal(log["source"], "shadow"))
    ids = log["request_id"].to_pylist()
    keep = [i for i, r in enumerate(ids) if r in labels][-RECENT_LABELS:]
    window = log.take(pa.array(keep, pa.int64()))
    return window.append_column("label", pa.array([labels[ids[i]] for i in keep]))


def _score(settings: Settings, s: Session, who: str, name: str, version: int, window: pa.Table) -> dict[str, float]:
    """The Learn phase's metrics of one model version on the labeled window, from its scores
    (every class's probability), as at training."""
    import numpy as np

    from valueloop.deploy.model import load_ref
    from valueloop.learn.evaluation import metrics, scores
    from valueloop.learn.registry import target_of
    from valueloop.operate.performance import token

    model = load_ref(s, settings, who, name, str(version))
    features = model.validator.table(window)  # the contract REST, batch and stream keep
    target = target_of(s, name, version)
    labels = window["label"].to_pylist()
    if target.classifier:  # a label is the class it spells (1, 1.0 and "1" are the class 1)
        classes = {token(c): c for c in target.classes}
        y = np.array([classes.get(token(v), token(v)) for v in labels], dtype=object)
    else:
        y = np.asarray(labels, float)
    score = scores(model.estimator, model.table_input(features), target)
    return {k: v for k, v in metrics(y, score, target).items() if not np.isnan(v)}


def _compare(loop: _Loop, spec: UseCaseSpec, champion: int | None, challenger: int, margin: float,
             min_labels: int) -> Callable[[Session, str], dict[str, Any]]:
    def work(s: Session, who: str) -> dict[str, Any]:
        metric = spec.model.primary_metric
        window = _labeled_window(loop.settings, loop.usecase)
        result: dict[str, Any] = {"metric": metric, "margin": margin, "labeled_rows": window.num_rows}
        if champion is None:
            return result | {"wins": False, "reason": "no champion to compare with"}
        if window.num_rows < min_labels:
            return result | {"wins": False, "reason": f"{window.num_rows} labeled prediction(s); "
                             f"the comparison needs retrain.min_labels = {min_labels}"}
        if window.num_rows:
            start, end = window["ts"][0].as_py(), window["ts"][-1].as_py()
            result |= {"window": [start.isoformat(), end.isoformat()]}
        champ = _score(loop.settings, s, who, loop.usecase, champion, window)
        chal = _score(loop.settings, s, who, loop.usecase, challenger, window)
        if metric not in champ or metric not in chal:
            return result | {"wins": False, "reason": f"{metric} is undefined on this window (one class only?)",
                             "champion": champ, "challenger": chal}
        gain = champ[metric] - chal[metric] if metric in LOWER_IS_BETTER else chal[metric] - champ[metric]
        return result | {"champion": champ, "challenger": chal, "gain": gain, "wins": gain > 0 and gain >= margin}
    return work


def _request_decision(s: Session, name: str, message: str) -> int:
    """An open alert on the log route asks the owner to decide."""
    now = utcnow()
    alert = Alert(usecase=name, rule="retrain_decision", metric="retrain", value=0.0, threshold=0.0,
                  message=message, status="open", dedup_key=f"{name}:retrain_decision:{now.isoformat()}",
                  occurrences=1, deliveries={"log": {"attempts": 1, "delivered": True, "error": None,
                                                     "at": now.isoformat()}},
                  created_at=now, last_seen_at=now)
    s.add(alert)
    s.flush()
    logging.getLogger("valueloop.alerts").warning("ALERT %s", message)
    return alert.id


def retrain(settings: Settings, actor: str | None, name: str, trigger: str = "manual") -> RetrainView:
    """Run the whole loop once; a step that fails ends it as ``failed`` with the reason, keeping
    what the earlier steps committed (each is whole on its own)."""
    from valueloop.data import ingest
    from valueloop.learn.registry import accept, promote
    from valueloop.learn.tables import ModelVersion
    from valueloop.learn.training import train

    request_id, requested_by = _start(settings, actor, name, trigger)
    with open_session(settings) as s:
        usecase = get_usecase(s, name)
        system_user(s, POLICY)
        authorization = {"owner": spec_of(usecase).owner, "spec_digest": usecase.spec_digest}
    loop = _Loop(settings, request_id, name, requested_by, authorization)
    try:
        with open_session(settings) as s:
            spec = spec_of(get_usecase(s, name))
            champion = next((r.version for r in s.scalars(select(ModelVersion).where(ModelVersion.usecase == name))
                             if "champion" in r.aliases), None)
        policy = operate_of(spec).retrain
        opened = loop.step("cycle", _open_cycle(loop, trigger))
        loop.update(cycle=opened["cycle"], champion_version=str(champion) if champion else None)
        ingested = loop.step("ingest", lambda s, who: {
            "dataset_version": (v := ingest(s, settings, who, name)).version, "rows": v.row_count})
        loop.update(dataset_version=ingested["dataset_version"])
        trained = loop.step("train", lambda s, who: _trained(
            train(s, settings, who, name, dataset_version=ingested["dataset_version"],
                  candidates=policy.candidates or None)))
        if trained["registered"] is None:
            return _finish(loop, "failed", "no candidate passed its model tests; nothing was registered",
                           ask_owner=True)
        challenger = int(trained["registered"])
        loop.update(challenger_version=str(challenger))
        comparison = loop.step("compare", _compare(loop, spec, champion, challenger, policy.margin,
                                                          policy.min_labels))
        loop.update(comparison=comparison)
        if not comparison["wins"] or not policy.auto_promote:
            loop.step("challenger", lambda s, who: {"alias": promote(s, settings, who, name, challenger, "challenger").aliases})
            why = (comparison.get("reason") or f"the challenger does not beat the champion by the margin "
                   f"{policy.margin:g} on {comparison['metric']}") if not comparison["wins"] else \
                "the policy does not promote automatically (retrain.auto_promote: false)"
            return _finish(loop, "awaiting_owner", f"v{challenger} set as challenger, not promoted: {why}; "
                           f"the owner decides", ask_owner=True)
        if policy.rollout != "direct":
            loop.step("challenger", lambda s, who: {
                "alias": promote(s, settings, who, name, challenger, "challenger").aliases,
                "rollout": policy.rollout})
        loop.step("accept", lambda s, who: {"acceptance": accept(
            s, who, name, challenger, accepted=True,
            comment=f"accepted by the retraining policy under the standing authorization of the owner "
                    f"{authorization['owner']} (retrain.auto_promote): beats v{champion} on {comparison['metric']} by "
                    f"{comparison['gain']:.4f} (margin {policy.margin:g}) over {comparison['labeled_rows']} "
                    "recent labeled predictions").acceptance})
        loop.step("promote", lambda s, who: {"alias": promote(s, settings, who, name, challenger, "champion").aliases})
        loop.step("production", lambda s, who: _back_in_production(s, who, name, challenger))
        return _finish(loop, "promoted", f"v{challenger} promoted to champion: it beats v{champion} on "
                       f"{comparison['metric']} by {comparison['gain']:.4f} (margin {policy.margin:g})")
    except ValueloopError as exc:
        return _finish(loop, "failed", str(exc), ask_owner=True, error=type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - left running, the request would block retraining for hours
        log.exception("retraining #%s of %s failed", request_id, name)
        return _finish(loop, "failed", f"unexpected {type(exc).__name__}; the server log has the details",
                       ask_owner=True)


def _trained(report: Any) -> dict[str, Any]:
    return {"training_id": report.training_id, "best": report.best,
            "registered": report.registered.version if report.registered else None,
            "candidates": {r.candidate: r.primary for r in report.results}}


def _back_in_production(s: Session, who: str, name: str, version: int) -> dict[str, Any]:
    usecase = get_usecase(s, name)
    if State(usecase.state) is State.in_development:
        usecases.advance(s, who, name, State.in_production, f"v{version} promoted by the retraining policy")
    return {"state": get_usecase(s, name).state}


def _finish(loop: _Loop, status: str, decision: str, ask_owner: bool = False, error: str | None = None) -> RetrainView:
    with open_session(loop.settings) as s:
        row = s.get(RetrainRequest, loop.request_id)
        assert row is not None
        row.status, row.decision, row.finished_at = status, decision, utcnow()
        if error is not None:
            row.steps = [*row.steps, Step(step="failed", at=utcnow(), performed_as=None,
                                          detail={"error": error}).model_dump(mode="json")]
        if ask_owner:
            alert = _request_decision(s, loop.usecase, f"{loop.usecase}: retraining #{row.id} {status}: {decision}")
            row.steps = [*row.steps, Step(step="ask_owner", at=utcnow(), performed_as=None,
                                          detail={"alert": alert}).model_dump(mode="json")]
        audit.record(s, loop.requested_by, "retrain.finish", "retrain", row.id, usecase=loop.usecase,
                     after={"status": status, "decision": decision, "challenger": row.challenger_version})
        return _view(row)


def list_requests(session: Session, actor: str | None, name: str) -> list[RetrainView]:
    viewed(session, actor, name)
    rows = session.scalars(select(RetrainRequest).where(RetrainRequest.usecase == name).order_by(RetrainRequest.id))
    return [_view(r) for r in rows]


def get_request(session: Session, actor: str | None, request_id: int) -> RetrainView:
    row = session.get(RetrainRequest, request_id)
    if row is None:
        raise NotFound(f"retraining #{request_id}: no such request")
    require(session, get_user(session, actor), Action.view, get_usecase(session, row.usecase))
    return _view(row)

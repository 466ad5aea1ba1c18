"""The inbox (home): what waits for the signed-in person, their use cases by lifecycle state, and
what they did last."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select

from valueloop.console.web import View
from valueloop.learn.tables import ModelVersion
from valueloop.operate.alerts import list_alerts
from valueloop.outcomes import audit, privacy
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.roles import Action, Role, allows, roles_of
from valueloop.outcomes.usecases import UseCaseView, get_usecase, list_usecases

router = APIRouter()

#: how many of one's own last actions the inbox shows
RECENT = 10


class Waiting(BaseModel):
    """One thing that waits for the viewer's decision."""

    usecase: str
    what: str
    since: datetime
    link: str


class Inbox(BaseModel):
    user: str
    dpias_to_decide: list[Waiting]
    models_to_accept: list[Waiting]
    challengers: list[Waiting]
    open_alerts: list[Waiting]
    usecases_by_state: dict[State, list[UseCaseView]]
    recent_actions: list[audit.AuditEntry]


def build(view: View) -> Inbox:
    s, me = view.s, view.user
    usecases = list_usecases(s, me.name)
    rows = {u.name: get_usecase(s, u.name) for u in usecases}
    deciding = [u for u in usecases if Role.privacy_officer in roles_of(s, me, rows[u.name])
                and u.privacy.endswith(" pending")]
    dpias = [Waiting(usecase=u.name, what=f"DPIA v{a.version} submitted by {a.submitted_by}",
                     since=a.submitted_at, link=f"/usecases/{u.name}/privacy")
             for u in deciding for a in privacy.history(s, me.name, u.name)[-1:]]
    owned = [u.name for u in usecases if allows(s, me, Action.accept_model, rows[u.name])]
    pending = s.scalars(select(ModelVersion).where(ModelVersion.usecase.in_(owned),
                                                   ModelVersion.acceptance == "pending")
                        .order_by(ModelVersion.usecase, ModelVersion.version)) if owned else []
    models = [Waiting(usecase=m.usecase, what=f"model v{m.version} awaits your acceptance",
                      since=m.created_at, link=f"/usecases/{m.usecase}/models") for m in pending]
    promoting = [u.name for u in usecases if allows(s, me, Action.promote, rows[u.name])]
    candidates = s.execute(select(ModelVersion.usecase, ModelVersion.version, ModelVersion.aliases,
                                  ModelVersion.created_at).where(ModelVersion.usecase.in_(promoting))
                           .order_by(ModelVersion.usecase, ModelVersion.version)) if promoting else []
    challengers = [Waiting(usecase=u, what=f"challenger v{v} waits for a decision: promote it to champion, "
                           "or leave the champion serving", since=at, link=f"/usecases/{u}/models?version={v}")
                   for u, v, aliases, at in candidates if "challenger" in (aliases or [])]
    operated = {u.name for u in usecases if allows(s, me, Action.operate, rows[u.name])}
    alerts = [Waiting(usecase=a.usecase, what=a.message, since=a.last_seen_at,
                      link=f"/usecases/{a.usecase}/operate")
              for a in list_alerts(s, me.name) if a.usecase in operated and a.status != "acknowledged"]
    by_state = {state: [u for u in usecases if u.state is state] for state in State}
    return Inbox(user=me.name, dpias_to_decide=dpias, models_to_accept=models, challengers=challengers,
                 open_alerts=alerts,
                 usecases_by_state={k: v for k, v in by_state.items() if v},
                 recent_actions=audit.trail(s, me.name, actor=me.name, limit=RECENT)[::-1])


@router.get("/")
def inbox(view: View) -> Response:
    return view.render("inbox.html", build(view), nav="inbox")

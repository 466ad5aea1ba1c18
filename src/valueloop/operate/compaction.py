"""Compaction of the prediction log: every writer's small files of a past day rewritten as one,
so the monitor opens a few files per day however many replicas and flushes wrote them. Run by
operations (``valueloop compact``) and daily by the scheduler of ``valueloop server``; audited."""

from __future__ import annotations

from valueloop.config import Settings
from valueloop.deploy.predlog import Compaction, PredictionLog
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.usecases import get_usecase
from valueloop.outcomes.users import get_user
from valueloop.store import session as open_session


def compact_log(settings: Settings, actor: str | None, usecase: str) -> Compaction:
    """Compact the use case's prediction log up to yesterday (operations); returns what was done."""
    with open_session(settings) as s:
        who = get_user(s, actor)
        require(s, who, Action.operate, get_usecase(s, usecase))
    done = PredictionLog(settings, usecase).compact()
    with open_session(settings) as s:
        audit.record(s, who.name, "predictions.compact", "usecase", usecase, usecase=usecase,
                     after=done.model_dump())
    return done

"""Who may score a use case's data outside REST serving: batch jobs and stream consumers.

The model they score with is the same :class:`~valueloop.deploy.model.ServedModel` REST serves,
loaded by :func:`~valueloop.deploy.model.load_ref`: one contract for every transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from valueloop.store.models import User


def authorize(session: Session, actor: str | None, usecase: str) -> User:
    """The acting user, allowed to score the use case's data: :attr:`Action.deploy` (developers
    and operations), on a use case that is not retired."""
    from valueloop.errors import Conflict
    from valueloop.outcomes.lifecycle import State
    from valueloop.outcomes.roles import Action, require
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.outcomes.users import get_user

    found = get_usecase(session, usecase)
    acting = get_user(session, actor)
    require(session, acting, Action.deploy, found)
    if State(found.state) is State.retired:
        raise Conflict(f"use case '{usecase}' is retired: its models no longer score")
    return acting

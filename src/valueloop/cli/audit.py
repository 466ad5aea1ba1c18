"""``valueloop audit``: the append-only trail of every state change."""

from __future__ import annotations

import typer

from valueloop.cli._common import JsonOption, show, table


def _brief(change: dict | None) -> str:  # type: ignore[type-arg]
    if not change:
        return ""
    return ", ".join(f"{k}={v}" for k, v in change.items() if v not in (None, "", [], {}) and k != "spec_digest")[:80]


def audit(
    usecase: str = typer.Argument(None, help="Only this use case."),
    user: str = typer.Option(None, "--actor", help="Only what this user did."),
    action: str = typer.Option(None, "--action", help="Only actions starting with this, e.g. privacy."),
    limit: int = typer.Option(None, "--limit", help="Only the newest N events."),
    as_json: bool = JsonOption,
) -> None:
    """Who changed what, when: before and after of every state change."""
    from valueloop.outcomes.audit import events
    from valueloop.store import session

    with session() as s:
        rows = events(s, usecase=usecase, actor=user, action=action, limit=limit)
    show(rows, as_json, lambda: table(
        "audit trail" + (f" of {usecase}" if usecase else ""),
        ["#", "time (UTC)", "actor", "action", "object", "before", "after"],
        [(e.id, f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.object_id, _brief(e.before), _brief(e.after))
         for e in rows]))

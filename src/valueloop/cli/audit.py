"""``valueloop audit``: the append-only, hash-chained trail of every state change, and its check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import typer
from typer.core import TyperGroup

from valueloop.cli._common import JsonOption, console, show, table
from valueloop.cli.remote import Route, answer, call, served, server

if TYPE_CHECKING:
    from valueloop.outcomes.audit import Verification


class _TrailByDefault(TyperGroup):
    """``valueloop audit [USECASE]`` reads the trail; ``valueloop audit verify`` checks the chain."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["trail", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_TrailByDefault, help="Who changed what, when; `audit verify` checks the chain.",
                  rich_markup_mode=None)


def _brief(change: dict | None) -> str:  # type: ignore[type-arg]
    if not change:
        return ""
    return ", ".join(f"{k}={v}" for k, v in change.items() if v not in (None, "", [], {}) and k != "spec_digest")[:80]


@app.command("trail")
@served
def trail(
    ctx: typer.Context,
    usecase: str = typer.Argument(None, help="Only this use case."),
    user: str = typer.Option(None, "--actor", help="Only what this user did."),
    action: str = typer.Option(None, "--action", help="Only actions starting with this, e.g. privacy."),
    limit: int = typer.Option(None, "--limit", help="Only the newest N events."),
    as_json: bool = JsonOption,
) -> None:
    """Who changed what, when (the default): what you did and the trail of the use cases you may
    view; the admin sees everything."""
    from valueloop.outcomes.audit import trail as trail_

    query = {"usecase": usecase, "actor": user, "action": action, "limit": limit}
    rows = call(ctx, Route("GET", "/api/audit", params=query), trail_,
                usecase=usecase, actor=user, action=action, limit=limit)
    show(rows, as_json, lambda: table(
        "audit trail" + (f" of {usecase}" if usecase else ""),
        ["#", "time (UTC)", "actor", "action", "object", "before", "after"],
        [(e.id, f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.object_id, _brief(e.before), _brief(e.after))
         for e in rows]))


@app.command("verify")
@served
def verify(
    ctx: typer.Context,
    export: bool = typer.Option(
        False, "--export", help="When the chain holds, append its head to <home>/audit/heads.jsonl."),
    as_json: bool = JsonOption,
) -> None:
    """Check the hash chain: name the first event changed, deleted, inserted or moved, and any
    truncation since the last exported head. Exits 1 when the chain is broken."""
    from valueloop.errors import InvalidInput
    from valueloop.outcomes.audit import Verification

    if export and server():
        raise InvalidInput("--export: the heads file is in the home of the server, which exports its heads "
                           "itself; run `valueloop audit verify --export` there, in local mode")
    result = answer(ctx, Route("GET", "/api/audit/verify"), Verification, _verify)
    exported = export and result.ok and _export(result)
    show(result, as_json, lambda: console().print(
        f"audit chain holds: {result.events} events, head #{result.head.position} sha256:{result.head.hash}"
        + (f"; agrees with the head exported at {result.exported.at:%Y-%m-%d %H:%M:%S} UTC"
           if result.exported and result.exported.at else "; no head exported yet")
        if result.ok else f"[red]audit chain broken at event #{result.first_broken}:[/red] {result.problem}"))
    if exported and not as_json:
        console().print(f"exported the head to {exported}")
    if not result.ok:
        raise typer.Exit(1)


def _verify(who: str | None) -> Verification:
    """The chain, checked against the heads exported from this home, for a known user."""
    from valueloop.config import load_settings
    from valueloop.outcomes.audit import exported_heads
    from valueloop.outcomes.audit import verify as verify_
    from valueloop.outcomes.users import get_user
    from valueloop.store import session

    settings = load_settings()
    with session(settings) as s:
        get_user(s, who)
        return verify_(s, exported_heads(settings))


def _export(result: Verification) -> Path | None:
    """Append the head to this home's heads file; where, or None when it was there already."""
    from valueloop.config import load_settings
    from valueloop.outcomes.audit import append_head, heads_file

    settings = load_settings()
    return heads_file(settings) if append_head(settings, result.head) else None

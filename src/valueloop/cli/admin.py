"""``valueloop config``, ``valueloop users ...`` and ``valueloop tokens ...``."""

from __future__ import annotations

import typer

from valueloop.cli._common import JsonOption, group, actor, console, parse_duration, show, table

users_app = group("People who take part in the loop.")
tokens_app = group("API tokens for the HTTP API (shown once, stored hashed).")


def config(as_json: bool = JsonOption) -> None:
    """The effective settings and where each value came from."""
    from valueloop.config import FIELDS, load_settings

    described = load_settings().describe()
    data = {k: {"value": v.value, "source": v.source} for k, v in described.items()}
    show(data, as_json, lambda: table("valueloop settings", ["setting", "value", "source", "meaning"],
                                      [(k, v.value, v.source, FIELDS[k]) for k, v in described.items()]))


@users_app.command("add")
def add(
    ctx: typer.Context,
    name: str,
    email: str = typer.Option(None, "--email"),
    admin: bool = typer.Option(False, "--admin", help="May administer users and tokens."),
    privacy_officer: bool = typer.Option(False, "--privacy-officer", help="Appointed to decide DPIAs."),
    as_json: bool = JsonOption,
) -> None:
    """Add a user (an admin may; the very first user becomes the admin)."""
    from pydantic import ValidationError

    from valueloop.errors import InvalidInput
    from valueloop.outcomes.users import NewUser, add_user
    from valueloop.store import session
    from valueloop.validation import describe_errors

    try:
        new = NewUser(name=name, email=email, is_admin=admin, is_privacy_officer=privacy_officer)
    except ValidationError as exc:
        raise InvalidInput("user is invalid:", problems=describe_errors(exc)) from None
    with session() as s:
        u = add_user(s, actor(ctx), new)
    show(u, as_json, lambda: console().print(f"added user {u.name}" + (" (admin)" if u.is_admin else "")
                                             + (" (privacy officer)" if u.is_privacy_officer else "")))


@users_app.command("appoint")
def appoint(
    ctx: typer.Context,
    name: str,
    relieve: bool = typer.Option(False, "--relieve", help="End the appointment instead."),
    as_json: bool = JsonOption,
) -> None:
    """Appoint NAME a privacy officer (the admin may): they decide the DPIA of every use case
    on which they hold no other role."""
    from valueloop.outcomes.users import appoint as appoint_
    from valueloop.store import session

    with session() as s:
        u = appoint_(s, actor(ctx), name, privacy_officer=not relieve)
    show(u, as_json, lambda: console().print(
        f"{u.name} is {'now' if u.is_privacy_officer else 'no longer'} a privacy officer"))


@users_app.command("list")
def list_users(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every user (e-mail addresses are shown to the admin only)."""
    from valueloop.outcomes.users import list_users as list_
    from valueloop.store import session

    with session() as s:
        rows = list_(s, actor(ctx))
    show(rows, as_json, lambda: table(
        "users", ["name", "email", "role", "since"],
        [(u.name, u.email, "admin" if u.is_admin else "privacy officer" if u.is_privacy_officer else "",
          f"{u.created_at:%Y-%m-%d}") for u in rows]))


@tokens_app.command("create")
def create_token(
    ctx: typer.Context,
    name: str = typer.Option("default", "--name", help="A label to recognise the token by."),
    expires_in: str = typer.Option(None, "--expires-in", help="e.g. 90m, 12h, 30d; default never."),
    as_json: bool = JsonOption,
) -> None:
    """Create an API token. The secret is printed once; store it now."""
    from valueloop.outcomes.users import create_token as create_
    from valueloop.store import session

    ttl = parse_duration(expires_in, "--expires-in") if expires_in else None
    with session() as s:
        t = create_(s, actor(ctx), name, expires_in=ttl)
    show(t, as_json, lambda: console().print(
        f"token {t.id} for {t.user} ({t.name}), expires {t.expires_at or 'never'}:\n{t.token}\n"
        "[yellow]This is the only time the token is shown.[/yellow]"))


@tokens_app.command("list")
def list_tokens(
    ctx: typer.Context,
    every_user: bool = typer.Option(False, "--all", help="Every user's tokens (admin only)."),
    as_json: bool = JsonOption,
) -> None:
    """Your tokens (never their secrets)."""
    from valueloop.outcomes.users import list_tokens as list_
    from valueloop.store import session

    with session() as s:
        rows = list_(s, actor(ctx), every_user=every_user)
    show(rows, as_json, lambda: table("tokens", ["id", "user", "name", "prefix", "status", "expires"],
                                      [(t.id, t.user, t.name, t.prefix + "…", t.status, t.expires_at or "never") for t in rows]))


@tokens_app.command("revoke")
def revoke(ctx: typer.Context, token_id: int, as_json: bool = JsonOption) -> None:
    """Revoke a token at once."""
    from valueloop.outcomes.users import revoke_token
    from valueloop.store import session

    with session() as s:
        t = revoke_token(s, actor(ctx), token_id)
    show(t, as_json, lambda: console().print(f"token {t.id} ({t.prefix}…) of {t.user} is {t.status}"))

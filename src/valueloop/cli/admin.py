"""``valueloop config``, ``login``/``logout``, ``valueloop users ...`` and ``valueloop tokens ...``."""

from __future__ import annotations

import sys

import typer

from valueloop.cli._common import JsonOption, group, console, show, table
from valueloop.cli.remote import Route, Server, call, credentials_path, keep_credentials, request, segment, served

users_app = group("People who take part in the loop.")
tokens_app = group("API tokens for the HTTP API (shown once, stored hashed).")
#: hosts a token may reach over plain http without a warning
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def config(as_json: bool = JsonOption) -> None:
    """The effective settings and where each value came from."""
    from valueloop.config import FIELDS, load_settings

    described = load_settings().describe()
    data = {k: {"value": v.value, "source": v.source} for k, v in described.items()}
    show(data, as_json, lambda: table("valueloop settings", ["setting", "value", "source", "meaning"],
                                      [(k, v.value, v.source, FIELDS[k]) for k, v in described.items()]))


@served
def login(url: str = typer.Argument(..., help="The control plane, e.g. https://valueloop.example.com.")) -> None:
    """Enter server mode: check a token (asked for, or read from stdin) against the control plane
    at URL, and keep both in a file only you can read. Every command then acts as the token's user."""
    from urllib.parse import urlsplit

    from valueloop.errors import InvalidInput

    secret = (typer.prompt("token", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()).strip()
    if not secret:
        raise InvalidInput("token: empty; create one with `valueloop tokens create` (on the server's machine, "
                           "or by the admin) and paste it")
    target = Server(url.rstrip("/"), secret)
    me = request(Route("GET", "/api/me"), target).json()
    path = keep_credentials(target)
    console().print(f"logged in to {target.url} as {me['name']}; credentials kept in {path}")
    address = urlsplit(target.url)
    if address.scheme != "https" and address.hostname not in LOOPBACK:
        console().print("[yellow]the token travels in clear text over http: use https beyond this machine[/yellow]")


@served
def logout() -> None:
    """Leave server mode: forget the URL and token that `valueloop login` kept."""
    path = credentials_path()
    if not path.exists():
        console().print("not logged in")
        return
    path.unlink()
    console().print("logged out; the token still works until revoked (`valueloop tokens revoke ID`)")


@users_app.command("add")
@served
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
    from valueloop.validation import describe_errors

    try:
        new = NewUser(name=name, email=email, is_admin=admin, is_privacy_officer=privacy_officer)
    except ValidationError as exc:
        raise InvalidInput("user is invalid:", problems=describe_errors(exc)) from None
    u = call(ctx, Route("POST", "/api/users", json=new.model_dump(mode="json")), add_user, new)
    show(u, as_json, lambda: console().print(f"added user {u.name}" + (" (admin)" if u.is_admin else "")
                                             + (" (privacy officer)" if u.is_privacy_officer else "")))


@users_app.command("appoint")
@served
def appoint(
    ctx: typer.Context,
    name: str,
    relieve: bool = typer.Option(False, "--relieve", help="End the appointment instead."),
    as_json: bool = JsonOption,
) -> None:
    """Appoint NAME a privacy officer (the admin may): they decide the DPIA of every use case
    on which they hold no other role."""
    from valueloop.outcomes.users import appoint as appoint_

    u = call(ctx, Route("PUT", f"/api/users/{segment(name)}/appointment", json={"privacy_officer": not relieve}),
             appoint_, name, privacy_officer=not relieve)
    show(u, as_json, lambda: console().print(
        f"{u.name} is {'now' if u.is_privacy_officer else 'no longer'} a privacy officer"))


@users_app.command("passwd")
@served
def passwd(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Set NAME's console password (asked for twice, or read from stdin): your own, or as the
    admin anyone's initial one."""
    from valueloop.errors import InvalidInput
    from valueloop.outcomes.users import set_password

    if sys.stdin.isatty():
        password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise InvalidInput("password: empty; type it when asked, or pipe it on stdin")
    u = call(ctx, Route("PUT", f"/api/users/{segment(name)}/password", json={"password": password}),
             set_password, name, password)
    show(u, as_json, lambda: console().print(f"password of {u.name} is set; they sign in to the console with it"))


@users_app.command("list")
@served
def list_users(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every user (e-mail addresses are shown to the admin only)."""
    from valueloop.outcomes.users import list_users as list_

    rows = call(ctx, Route("GET", "/api/users"), list_)
    show(rows, as_json, lambda: table(
        "users", ["name", "email", "role", "since"],
        [(u.name, u.email, "admin" if u.is_admin else "privacy officer" if u.is_privacy_officer else "",
          f"{u.created_at:%Y-%m-%d}") for u in rows]))


@tokens_app.command("create")
@served
def create_token(
    ctx: typer.Context,
    name: str = typer.Option("default", "--name", help="A label to recognise the token by."),
    expires_in: str = typer.Option(None, "--expires-in", help="e.g. 90m, 12h, 30d; default never."),
    as_json: bool = JsonOption,
) -> None:
    """Create an API token. The secret is printed once; store it now."""
    from valueloop.durations import parse_duration
    from valueloop.outcomes.users import create_token as create_

    ttl = parse_duration(expires_in, "--expires-in").delta if expires_in is not None else None
    seconds = int(ttl.total_seconds()) if ttl else None
    t = call(ctx, Route("POST", "/api/tokens", json={"name": name, "expires_in_seconds": seconds}),
             create_, name, expires_in=ttl)
    show(t, as_json, lambda: console().print(
        f"token {t.id} for {t.user} ({t.name}), expires {t.expires_at or 'never'}:\n{t.token}\n"
        "[yellow]This is the only time the token is shown.[/yellow]"))


@tokens_app.command("list")
@served
def list_tokens(
    ctx: typer.Context,
    every_user: bool = typer.Option(False, "--all", help="Every user's tokens (admin only)."),
    as_json: bool = JsonOption,
) -> None:
    """Your tokens (never their secrets)."""
    from valueloop.outcomes.users import list_tokens as list_

    rows = call(ctx, Route("GET", "/api/tokens", params={"all": every_user}), list_, every_user=every_user)
    show(rows, as_json, lambda: table("tokens", ["id", "user", "name", "prefix", "status", "expires"],
                                      [(t.id, t.user, t.name, t.prefix + "…", t.status, t.expires_at or "never") for t in rows]))


@tokens_app.command("revoke")
@served
def revoke(ctx: typer.Context, token_id: int, as_json: bool = JsonOption) -> None:
    """Revoke a token at once."""
    from valueloop.outcomes.users import revoke_token

    t = call(ctx, Route("DELETE", f"/api/tokens/{token_id}"), revoke_token, token_id)
    show(t, as_json, lambda: console().print(f"token {t.id} ({t.prefix}…) of {t.user} is {t.status}"))

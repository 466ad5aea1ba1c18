"""The admin page: people (the admin adds them, sets initial passwords, appoints privacy
officers), roles per use case (for the admin and each use case's owner), and API tokens (every
person's own; a new secret is shown once)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from valueloop.console.web import Form, Problems, View, etag_of, text
from valueloop.errors import InvalidInput
from valueloop.outcomes import usecases, users
from valueloop.outcomes.roles import Action, Role, allows
from valueloop.outcomes.usecases import MemberView
from valueloop.validation import describe_errors

router = APIRouter()

#: the roles a membership can carry (admin is a flag, privacy officers are appointed)
MEMBER_ROLES = [r for r in Role if r not in (Role.admin, Role.privacy_officer)]


class Team(BaseModel):
    usecase: str
    title: str
    members: list[MemberView]
    may_manage: bool
    etag: str


class AdminPage(BaseModel):
    users: list[users.UserView]
    teams: list[Team]
    tokens: list[users.TokenView]
    roles: list[Role]
    issued: users.IssuedToken | None = None


def _page(view: View, issued: users.IssuedToken | None = None) -> AdminPage:
    s, me = view.s, view.user
    teams = []
    for u in usecases.list_usecases(s, me.name):
        row = usecases.get_usecase(s, u.name)
        teams.append(Team(usecase=u.name, title=u.title, members=u.members, etag=etag_of(*u.members),
                          may_manage=allows(s, me, Action.manage_members, row)))
    return AdminPage(users=users.list_users(s, me.name) if me.is_admin else [users.user_view(me)],
                     teams=teams, tokens=users.list_tokens(s, me.name, every_user=me.is_admin),
                     roles=MEMBER_ROLES, issued=issued)


def _show(view: View, problems: Problems | None = None, issued: users.IssuedToken | None = None) -> Response:
    return view.render("admin.html", _page(view, issued), problems=problems, nav="admin")


def _again(view: View) -> Callable[[Problems], Response]:
    return lambda problems: _show(view, problems)


@router.get("/admin")
def admin_page(view: View) -> Response:
    return _show(view)


@router.post("/admin/users")
def add_user(view: View, form: Form) -> Response:
    try:
        new = users.NewUser(name=text(form, "name"), email=text(form, "email") or None,
                            is_privacy_officer=text(form, "privacy_officer") == "on")
    except ValidationError as exc:
        return view.refused(InvalidInput("user is invalid:", problems=describe_errors(exc)), _again(view),
                            {"name", "email"})
    return view.attempt(lambda s: users.add_user(s, view.name, new), "/admin", _again(view), {"name", "email"})


@router.post("/admin/users/{name}/password")
def set_password(name: str, view: View, form: Form) -> Response:
    password = text(form, "password")
    return view.attempt(lambda s: users.set_password(s, view.name, name, password), "/admin", _again(view),
                        {"password"})


@router.post("/admin/users/{name}/appointment")
def appoint(name: str, view: View, form: Form) -> Response:
    officer = text(form, "privacy_officer") == "yes"
    return view.attempt(lambda s: users.appoint(s, view.name, name, privacy_officer=officer), "/admin",
                        _again(view))


def _fresh_team(view: View, form: Form, name: str) -> None:
    members = usecases.list_members(view.s, view.name, name)
    view.fresh(form, etag_of(*members), f"the members of '{name}'")


def _role(form: Form) -> Role:
    role = text(form, "role")
    if role not in Role.__members__:
        raise InvalidInput(f"role: '{role}' is not a role; one of {', '.join(MEMBER_ROLES)}")
    return Role(role)


@router.post("/admin/members/{name}/add")
def add_member(name: str, view: View, form: Form) -> Response:
    _fresh_team(view, form, name)
    user, role = text(form, "user"), _role(form)
    return view.attempt(lambda s: usecases.add_member(s, view.name, name, user, role), "/admin", _again(view))


@router.post("/admin/members/{name}/remove")
def remove_member(name: str, view: View, form: Form) -> Response:
    _fresh_team(view, form, name)
    user, role = text(form, "user"), _role(form)
    return view.attempt(lambda s: usecases.remove_member(s, view.name, name, user, role), "/admin",
                        _again(view))


@router.post("/admin/tokens")
def create_token(view: View, form: Form) -> Response:
    """A new token, its secret on this one answer only (the page is not cached)."""
    days = text(form, "expires_in_days")
    if days and not (days.isdigit() and 0 < int(days) <= 3660):
        return view.refused(InvalidInput(f"expires_in_days: a whole number of days from 1 to 3660, got {days!r}"),
                            _again(view), {"expires_in_days"})
    ttl = timedelta(days=int(days)) if days else None
    issued = users.create_token(view.s, view.name, text(form, "name") or "console", expires_in=ttl)
    response = _show(view, issued=issued)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(token_id: int, view: View, form: Form) -> Response:
    return view.attempt(lambda s: users.revoke_token(s, view.name, token_id), "/admin", _again(view))

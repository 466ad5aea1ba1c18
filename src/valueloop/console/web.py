"""What every console page shares: the signed-in viewer, rendering as HTML or as its JSON twin,
CSRF-checked forms, stale-form refusal, and field-wise problems for re-rendered forms.

A page is a route that builds a pydantic model (its JSON twin) and hands it to
:meth:`Viewer.render` with a template; an action is a POST route that takes :data:`Form`
(the CSRF token is checked before the route runs), calls the service function the CLI calls, and
answers with :meth:`Viewer.done` (a redirect back to the page) or re-renders the page with the
problems of an :class:`~valueloop.errors.InvalidInput` next to their fields.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from valueloop.config import Settings
from valueloop.errors import AuthenticationFailed, Conflict, InvalidInput, PermissionDenied, ValueloopError
from valueloop.outcomes.users import get_user
from valueloop.security.sessions import signed_in
from valueloop.server.deps import DB
from valueloop.store import session
from valueloop.store.models import User

#: the cookie that holds a signed-in browser's session secret
SESSION_COOKIE = "valueloop_session"
#: where the edge marks a request for a page's JSON twin made with a ``.json`` suffix
JSON_TWIN = "valueloop.json"

templates = Jinja2Templates(directory=str(files("valueloop.console") / "templates"))


@pass_context
def _csrf_field(context: Mapping[str, Any]) -> Markup:
    """The hidden CSRF input every POST form carries: ``{{ csrf_field() }}``."""
    return Markup('<input type="hidden" name="csrf" value="{}">').format(context.get("csrf", ""))


def _etag_field(etag: str) -> Markup:
    """The hidden version of the object a form changes: ``{{ etag_field(page.etag) }}``."""
    return Markup('<input type="hidden" name="etag" value="{}">').format(etag)


def twin_url(request: Request) -> str:
    """The address of the page's JSON twin, with the page's own query: ``{{ twin_url(request) }}``."""
    path = request.url.path.rstrip("/") or "/index"
    return f"{path}.json" + (f"?{request.url.query}" if request.url.query else "")


def as_yaml(data: Any) -> str:
    """A use case file as the team writes it: ``{{ spec|yaml }}``."""
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


templates.env.globals.update(csrf_field=_csrf_field, etag_field=_etag_field, twin_url=twin_url)
templates.env.filters["yaml"] = as_yaml


class SignInRequired(AuthenticationFailed):
    """No live session: a page answers with the sign-in page, a JSON twin with 401."""


def wants_json(request: Request) -> bool:
    """The JSON twin of a page: ``?format=json`` or the path with ``.json`` appended."""
    return request.query_params.get("format") == "json" or bool(request.scope.get(JSON_TWIN))


def etag_of(*parts: BaseModel) -> str:
    """A short fingerprint of what a form was built from; a POST carrying another one is stale."""
    data = json.dumps([p.model_dump(mode="json") for p in parts], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


#: problems by field: ``reason`` → ["a rejection must say why, …"]; "" holds the rest
Problems = dict[str, list[str]]
#: the fields of a form that a problem may name
Fields = set[str] | frozenset[str]


def problems_of(exc: InvalidInput, fields: Fields = frozenset()) -> Problems:
    """An InvalidInput's message and problems, each under the field it names when the form has
    it (``reason: …`` goes next to the reason box), else under "" (shown above the form)."""
    found: Problems = {}
    lines = exc.problems or [exc.message]
    for line in lines:
        field = line.partition(":")[0].strip()
        key = field if field in fields else ""
        found.setdefault(key, []).append(line)
    if exc.problems and exc.message.rstrip(":") not in found.get("", []):
        found.setdefault("", []).insert(0, exc.message.rstrip(":"))
    return found


@dataclass
class Viewer:
    """The signed-in person looking at a page, with the transaction the page reads in."""

    request: Request
    s: Session
    user: User
    csrf: str

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def settings(self) -> Settings:
        """The settings the console was built with."""
        return self.request.app.state.settings

    def render(self, template: str, page: BaseModel, *, status: int = 200,
               problems: Problems | None = None, **extra: Any) -> Response:
        """The page as HTML from ``template`` (which sees ``page``), or as its JSON twin."""
        if wants_json(self.request):
            return JSONResponse(page.model_dump(mode="json"), status_code=status)
        posted = getattr(self.request.state, "form", None) if problems else None
        context = {"page": page, "me": self.user, "csrf": self.csrf, "problems": problems or {},
                   "posted": posted or {}, **extra}
        return templates.TemplateResponse(self.request, template, context, status_code=status)

    def done(self, url: str) -> Response:
        """After a change: back to a page with GET (a reload never repeats the POST)."""
        return RedirectResponse(url, status_code=303)

    def attempt(self, change: Callable[[Session], object], done: str,
                again: Callable[[Problems], Response], fields: Fields = frozenset()) -> Response:
        """Run a service call in a transaction of its own: whole, or on InvalidInput not at all,
        and the page again with the problems next to their fields. Other refusals reach the
        error page."""
        try:
            with session(self.request.app.state.settings) as s:
                change(s)
        except InvalidInput as exc:
            return self.refused(exc, again, fields)
        return self.done(done)

    def refused(self, exc: InvalidInput, again: Callable[[Problems], Response],
                fields: Fields = frozenset()) -> Response:
        """The page again (``again``) with the problems of ``exc`` by field, status 422."""
        response = again(problems_of(exc, fields))
        response.status_code = exc.http_status
        return response

    def fresh(self, form: FormData, current: str, what: str) -> None:
        """Refuse a form built from an older state of the object than the one stored now."""
        if form.get("etag") != current:
            raise Conflict(f"{what} changed since you loaded the page: reload it, look at the "
                           "change, and decide again (nothing was applied)")


@dataclass(frozen=True)
class Me:
    """Who the navigation is for: what a refusal page shows after the page's transaction ended."""

    name: str
    is_admin: bool
    csrf: str


def _me(s: Session, secret: str) -> tuple[User, Me]:
    """The person a session cookie signs in (raises when it is gone or expired)."""
    live = signed_in(s, secret)
    user = get_user(s, live.user)
    return user, Me(user.name, user.is_admin, live.csrf_token)


def viewer(request: Request, s: DB) -> Viewer:
    secret = request.cookies.get(SESSION_COOKIE, "")
    if not secret:
        raise SignInRequired("not signed in: sign in first")
    try:
        user, me = _me(s, secret)
    except AuthenticationFailed as exc:
        raise SignInRequired(exc.message) from None
    request.state.me = me
    return Viewer(request=request, s=s, user=user, csrf=me.csrf)


def me_of(request: Request) -> Me | None:
    """The signed-in person of a refused request, so its error page keeps the navigation: the one
    the page's dependency found, else the session cookie's (a path no route has), else nobody."""
    found = getattr(request.state, "me", None)
    secret = request.cookies.get(SESSION_COOKIE, "")
    if found is not None or not secret:
        return found
    try:
        with session(request.app.state.settings) as s:
            return _me(s, secret)[1]
    except ValueloopError:
        return None


View = Annotated[Viewer, Depends(viewer)]


async def checked_form(request: Request, view: View) -> FormData:
    """The posted form, after its CSRF token matched the session's: a page of another site can
    make the browser post, but cannot read the token it would need."""
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not secrets.compare_digest(sent, view.csrf):
        raise PermissionDenied("csrf: the form's security token is missing or belongs to another "
                               "session; reload the page and send the form again (nothing was applied)")
    request.state.form = form  # a page shown again with problems keeps what was typed
    return form


Form = Annotated[FormData, Depends(checked_form)]


def text(form: FormData, field: str) -> str:
    """A text field of the form, '' when absent (a file field is refused by its name)."""
    value = form.get(field, "")
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected text, got a file")
    return value.strip()


#: a version number in a page's query (at most PostgreSQL's integer: larger is a 422, not a 500)
Number = Annotated[int | None, Query(ge=0, le=2**31 - 1)]

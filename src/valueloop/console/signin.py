"""Sign-in with a password or an API token, and sign-out, which ends the session on the server."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from valueloop.config import Settings
from valueloop.console.web import SESSION_COOKIE, Form, View, templates, text
from valueloop.errors import AuthenticationFailed, PermissionDenied, TooManyRequests
from valueloop.security.sessions import LIFETIME, Started, sign_in, sign_out
from valueloop.store import session

router = APIRouter()

#: the double-submit token of the sign-in form, which has no session to hold one yet
SIGNIN_COOKIE = "valueloop_signin"


def _safe_next(target: str) -> str:
    """Only a path on this site: a crafted ?next= never sends a fresh session elsewhere."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def _page(request: Request, next_: str, status: int = 200, error: str = "", name: str = "") -> Response:
    token = secrets.token_urlsafe(32)
    context = {"me": None, "csrf": token, "next": next_, "error": error, "name": name, "problems": {}}
    response = templates.TemplateResponse(request, "signin.html", context, status_code=status)
    response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", path="/signin",
                        secure=request.url.scheme == "https")
    return response


@router.get("/signin")
def signin_page(request: Request, next_: Annotated[str, Query(alias="next")] = "/") -> Response:
    return _page(request, _safe_next(next_))


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await request.form()
    next_ = _safe_next(text(form, "next") or "/")
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not secrets.compare_digest(text(form, "csrf"), expected):
        raise PermissionDenied("csrf: the sign-in form's security token is missing or stale; "
                               "reload the sign-in page and try again")
    throttle = request.app.state.throttle
    client = request.client.host if request.client else "unknown"
    name = text(form, "name")
    try:
        throttle.check(client)
        started = await run_in_threadpool(_start, request.app.state.settings, name,
                                          text(form, "password"), text(form, "token"))
    except TooManyRequests as exc:
        return _page(request, next_, exc.http_status, exc.message, name)
    except AuthenticationFailed as exc:
        throttle.failed(client)
        return _page(request, next_, exc.http_status, exc.message, name)
    response = RedirectResponse(next_, status_code=303)
    response.set_cookie(SESSION_COOKIE, started.secret, max_age=int(LIFETIME.total_seconds()),
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return response


def _start(settings: Settings, name: str, password: str, token: str) -> Started:
    with session(settings) as s:
        return sign_in(s, name=name, password=password, token=token)


@router.post("/signout")
def signout(view: View, _: Form) -> Response:
    sign_out(view.s, view.request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response

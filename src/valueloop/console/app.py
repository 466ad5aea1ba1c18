"""The console as an ASGI application mounted at ``/`` beside the control plane: its routers, its
static files, its security headers, and its refusals as pages (or JSON for a page's twin)."""

from __future__ import annotations

from http import HTTPStatus
from importlib.resources import files
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from valueloop.config import Settings
from valueloop.console.web import JSON_TWIN, SignInRequired, me_of, templates, wants_json
from valueloop.errors import InternalError, ValueloopError
from valueloop.security.ratelimit import AuthenticationThrottle
from valueloop.validation import describe_errors

#: no inline script or style, nothing from another origin, never framed
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", POLICY.encode()), (b"x-frame-options", b"DENY"),
           (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


class Guard:
    """Pure ASGI around the console: a path ending in ``.json`` asks for the page's JSON twin
    (``/usecases/churn.json`` is ``/usecases/churn?format=json``), and every answer carries the
    security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.endswith(".json") and not path.startswith("/static/"):
            path = path.removesuffix(".json").removesuffix("/index") or "/"
            scope = {**scope, "path": path, "raw_path": path.encode(), JSON_TWIN: True}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _refusal(request: Request, status: int, kind: str, message: str, problems: list[str]) -> Response:
    if wants_json(request):
        body = {"error": {"type": kind, "message": message, "problems": problems}}
        return JSONResponse(body, status_code=status)
    me = me_of(request) if status != 401 else None
    context = {"status": status, "phrase": HTTPStatus(status).phrase, "kind": kind, "message": message,
               "problems": problems, "back": request.headers.get("referer", "/"), "me": me,
               "csrf": me.csrf if me else ""}
    return templates.TemplateResponse(request, "error.html", context, status_code=status)


def create_console(settings: Settings) -> FastAPI:
    """The console on the settings the control plane was given."""
    from valueloop.console import (admin, audit, card, data, deploy, inbox, models, operate, privacy, signin,
                                   usecase)

    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.add_middleware(Guard)
    console.state.settings = settings  # what server.deps.DB opens its transaction on
    console.state.throttle = AuthenticationThrottle()
    console.mount("/static", StaticFiles(directory=str(files("valueloop.console") / "static")), name="static")

    @console.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if wants_json(request) or request.method != "GET":
            return _refusal(request, 401, "AuthenticationFailed", exc.message, [])
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)

    @console.exception_handler(ValueloopError)
    async def _refused(request: Request, exc: ValueloopError) -> Response:
        return _refusal(request, exc.http_status, type(exc).__name__, exc.message, exc.problems)

    @console.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        kind = HTTPStatus(exc.status_code).phrase.replace(" ", "")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":  # no route: say which address
            message = f"no page at {request.url.path}: the inbox and the use cases lead to every page"
        return _refusal(request, exc.status_code, kind, message, [])

    @console.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = describe_errors(exc.errors())
        return _refusal(request, 422, "InvalidInput", f"request is invalid ({len(problems)} problem(s))", problems)

    @console.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        error = InternalError.logged(f"{request.method} {request.url.path}", request.headers)
        return _refusal(request, error.http_status, "InternalError", error.message, [])

    for module in (signin, inbox, usecase, privacy, data, models, card, deploy, operate, audit, admin):
        console.include_router(module.router)
    return console

"""Build the FastAPI application, guard its edge, and map errors to HTTP once, here."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from valueloop.config import Settings
from valueloop.errors import AuthenticationFailed, InternalError, InvalidInput, TooManyRequests, ValueloopError
from valueloop.security.body import read_body
from valueloop.security.ratelimit import AuthenticationThrottle
from valueloop.server.deps import ACTOR, user_of
from valueloop.validation import describe_errors

log = logging.getLogger("valueloop.server")

#: the largest request body the control plane reads: a use case file as JSON is a few kilobytes
MAX_BODY_BYTES = 1 << 20
#: every route under this prefix needs a bearer token
PROTECTED = "/api/"
#: a NUL in a JSON body: raw, or escaped after an even number of backslashes
_JSON_NUL = re.compile(rb"\x00|(?<!\\)(?:\\\\)*\\u0000")


def _error(status: int, kind: str, message: str, problems: list[str] | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"type": kind, "message": message, "problems": problems or []}}
    return JSONResponse(body, status_code=status, headers=headers)


def _refusal(exc: ValueloopError, headers: dict[str, str] | None = None) -> JSONResponse:
    if isinstance(exc, TooManyRequests):
        headers = {**(headers or {}), "Retry-After": str(exc.retry_after)}
    return _error(exc.http_status, type(exc).__name__, exc.message, exc.problems, headers)


class Edge:
    """Pure ASGI in front of the routes: under /api the token is checked, and failed attempts
    throttled per client, then every body is bounded, all before a byte of the body is read (a
    200 MB anonymous upload used to be read whole before its 401)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.throttle = AuthenticationThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            if scope["path"].startswith(PROTECTED):
                scope[ACTOR] = await self._authenticate(scope, headers.get("authorization", ""))
            body = await read_body(receive, headers.get("content-length"), MAX_BODY_BYTES)
            _refuse_nul(scope, body)
        except ValueloopError as exc:
            # close the connection: the unread rest of the body is not worth draining
            await _refusal(exc, {"Connection": "close"})(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _authenticate(self, scope: Scope, header: str) -> str:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("missing bearer token: send 'Authorization: Bearer <token>'")
        client = scope["client"][0] if scope.get("client") else "unknown"
        self.throttle.check(client)
        try:
            return await run_in_threadpool(user_of, self.settings, token.strip())
        except AuthenticationFailed:
            self.throttle.failed(client)
            raise


def _refuse_nul(scope: Scope, body: bytes) -> None:
    """No name, reason or message needs a NUL character, and PostgreSQL stores none in text: a
    request with one is refused here, the same on SQLite, instead of failing in the database."""
    for part, found in [("path", "\x00" in scope["path"]),
                        ("query", b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]),
                        ("body", _JSON_NUL.search(body) is not None)]:
        if found:
            raise InvalidInput(f"{part}: text may not contain the NUL character (U+0000)")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the routes the body the edge read, then waits for the disconnect."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def create_app(settings: Settings) -> FastAPI:
    """The control plane on ``settings``, read once by the caller: a request never reads the
    environment (serving's ``create_app`` takes its settings the same way)."""
    from valueloop.server import admin, outcomes

    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        title="valueloop control plane",
        description="Use cases, the DPIA and its decision, members, tokens and the audit log. "
        "Authenticate with `Authorization: Bearer <token>` from `valueloop tokens create`.",
        version="0.1.0",
    )
    app.state.settings = settings
    app.add_middleware(Edge, settings=settings)

    @app.exception_handler(ValueloopError)
    async def _valueloop_error(_: Request, exc: ValueloopError) -> JSONResponse:
        return _refusal(exc)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # routing's own refusals (no such route, a body that is not JSON) in the same shape
        kind = HTTPStatus(exc.status_code).phrase.replace(" ", "")
        return _error(exc.status_code, kind, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # a body's problems read as in the use case file: kpis[1].target, not body.kpis[1].target
        errors = [{**e, "loc": e["loc"][1:]} if e["loc"][:1] == ("body",) else e for e in exc.errors()]
        problems = describe_errors(errors)
        return _error(422, "InvalidInput", f"request is invalid ({len(problems)} problem(s))", problems)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error = InternalError.logged(f"{request.method} {request.url.path}", request.headers)
        return _error(error.http_status, "InternalError", error.message)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(outcomes.router)
    app.include_router(admin.router)
    from valueloop.server import data, learn, operate

    app.include_router(operate.router)
    app.include_router(data.router)
    app.include_router(learn.router)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI from the files vendored in the console: the page works without internet."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} · API",
                                   swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
                                   swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
                                   swagger_favicon_url="/static/valueloop.svg")

    from valueloop.console.app import create_console

    app.mount("/", create_console(settings))  # last: every route above comes first
    return app


def app_from_env() -> FastAPI:
    """The app factory for ``uvicorn --factory``: the settings of its environment, read once."""
    from valueloop.config import load_settings

    return create_app(load_settings())

"""Build the FastAPI application and map errors to HTTP once, here."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from valueloop.errors import ValueloopError
from valueloop.validation import describe_errors

log = logging.getLogger("valueloop.server")


def _error(status: int, kind: str, message: str, problems: list[str] | None = None) -> JSONResponse:
    body = {"error": {"type": kind, "message": message, "problems": problems or []}}
    return JSONResponse(body, status_code=status)


def create_app() -> FastAPI:
    from valueloop.server import admin, outcomes

    app = FastAPI(
        title="valueloop control plane",
        description="Use cases, the DPIA and its decision, members, tokens and the audit log. "
        "Authenticate with `Authorization: Bearer <token>` from `valueloop tokens create`.",
        version="0.1.0",
    )

    @app.exception_handler(ValueloopError)
    async def _valueloop_error(_: Request, exc: ValueloopError) -> JSONResponse:
        return _error(exc.http_status, type(exc).__name__, exc.message, exc.problems)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # a body's problems read as in the use case file: kpis[1].target, not body.kpis[1].target
        errors = [{**e, "loc": e["loc"][1:]} if e["loc"][:1] == ("body",) else e for e in exc.errors()]
        problems = describe_errors(errors)
        return _error(422, "InvalidInput", f"request is invalid ({len(problems)} problem(s))", problems)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the trace goes to the log, never to the client
        return _error(500, "InternalError", "internal error; the server log has the details")

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(outcomes.router)
    app.include_router(admin.router)
    from valueloop.server import operate

    app.include_router(operate.router)
    return app

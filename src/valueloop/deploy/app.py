"""The serving application: every use case's champion (and challenger) over three protocols.

Routes (``{name}`` is the use case):

- Open Inference Protocol v2: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``,
  ``/v2/models/{name}[/versions/{v}]``, ``.../ready``, ``.../config``, ``.../stats``,
  ``POST .../infer`` (JSON or binary tensors), ``POST /v2/repository/index``
- MLflow scoring: ``POST /invocations/{name}``, ``/models/{name}/invocations`` and ``/invocations``
  (the default model); ``GET /ping``, ``/health``, ``/version``
- plain: ``POST /predict/{name}``; labels: ``POST /feedback/{name}``
- ``GET /models`` (what is served), ``GET /metrics`` (Prometheus), ``GET /health/live|ready``
- ``GET /openapi.json``: these routes as an OpenAPI document

Every route but the probes (``/health/*``, ``/v2/health/*``, ``/v2``, ``/ping``, ``/health``,
``/version``) and ``/openapi.json`` needs
a bearer token, checked before the route is looked up and before any body is read: an anonymous
caller learns nothing, not even which models are served. A caller sees only the models of use
cases they hold a role on (:mod:`valueloop.deploy.access`).

A Starlette app rather than FastAPI: the hot path reads bytes, validates with the model's
compiled validator and writes bytes, with no per-request model classes. Every answer carries
``request_id`` and ``model_version`` in ``X-Request-Id`` / ``X-Model-Version`` (and in the body,
but for MLflow-compatible answers); each wire format refuses in its own clients' error format.
Request bodies may be gzip or deflate (``Content-Encoding``); answers are, when asked.
A request of several rows logs row ``i`` under ``<request_id>/<i>``; its feedback names the row
(``{"request_id": ..., "row": i, "label": ...}``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import sys
import time
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from valueloop.config import Settings, load_settings
from valueloop.deploy import openapi, protocols
from valueloop.deploy.access import Access, Caller, not_served, require
from valueloop.deploy.batching import MicroBatcher
from valueloop.deploy.metrics import IN_FLIGHT, LATENCY, REQUESTS, exposition, statistics, usecase_label
from valueloop.deploy.model import Prediction
from valueloop.deploy.pool import Deployment, Loader, ModelPool, State, registry_state
from valueloop.deploy.labels import record_feedback, row_id
from valueloop.deploy.predlog import AsyncPredictionLogger, PredictionLog
from valueloop.deploy.protocols import MLflow, OpenInference, Plain, Wire
from valueloop.deploy.routing import to_challenger
from valueloop.errors import InternalError, InvalidInput, NotFound, TooManyRequests, ValueloopError
from valueloop.outcomes.roles import Action
from valueloop.security.body import decoded, read_body

log = logging.getLogger("valueloop.deploy.app")

OPTIONS_ENV = "VALUELOOP_SERVE_OPTIONS"
#: the routes that answer without a token: probes (MLflow's scoring server's too), the OpenAPI document
OPEN = frozenset({"/v2", "/v2/health/live", "/v2/health/ready", "/health/live", "/health/ready", "/openapi.json",
                  "/ping", "/health", "/version"})
#: where the authenticated :class:`Caller` waits in the ASGI scope for the routes
CALLER = "valueloop.caller"


class TimedOut(ValueloopError):
    http_status = 504

    @classmethod
    def past(cls, timeout: float) -> TimedOut:
        return cls(f"prediction took longer than the use case's timeout of {timeout:g} s")


class NotReady(ValueloopError):
    http_status = 503


class MethodNotAllowed(ValueloopError):
    http_status = 405


def _served_version(deployment: Deployment, version: str) -> MicroBatcher:
    """The served version of a deployment, or 404 naming the versions it serves."""
    batcher = deployment.by_version(version)
    if batcher is None:
        raise NotFound(f"model '{deployment.usecase}' version {version[:64]} is not served; served: "
                       f"{', '.join(deployment.versions)}")
    return batcher


@dataclass(frozen=True)
class ServeOptions:
    auth: bool = True
    max_body_bytes: int = 1_000_000
    poll_seconds: float = 1.0
    log_predictions: bool = True
    #: how long a token's check is remembered; a revoked token stops working within this
    auth_cache_seconds: float = 1.0
    #: the use case ``POST /invocations`` scores; None: the only one served
    default_model: str | None = None
    #: MLflow's routes answer byte for byte as ``mlflow models serve``
    mlflow_compat: bool = False
    #: the one bearer token a bundle accepts, in place of the user database's tokens
    token: str | None = None


#: the AI Act's (Art. 50) notice of a limited-risk use case, with every prediction it answers
TRANSPARENCY = b"x-ai-transparency"


@functools.cache
def header_text(text: str) -> bytes:
    """A notice as a header value: ASCII as written, anything else UTF-8 percent-encoded. The use
    case file already refuses control characters; quote keeps a CR or LF out regardless."""
    from urllib.parse import quote

    return quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode("ascii")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(to_json(data), status_code=status, media_type="application/json", headers=headers)


def _error(exc: ValueloopError, wire: Wire) -> Response:
    status, body, content_type = wire.error(exc)
    return Response(body, status_code=status, media_type=content_type.decode())


def _compressed(body: bytes, accepted: str | None) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The answer gzip- or deflate-compressed when the client accepts it and it is worth it."""
    import zlib

    wants = {part.split(";")[0].strip().lower() for part in (accepted or "").split(",")}
    if len(body) < 512 or not wants & {"gzip", "deflate"}:
        return body, []
    kind = "gzip" if "gzip" in wants else "deflate"
    packer = zlib.compressobj(6, zlib.DEFLATED, 31 if kind == "gzip" else 15)
    return packer.compress(body) + packer.flush(), [(b"content-encoding", kind.encode())]


def _alone() -> bool:
    """Nothing else is ready to run on the event loop, so no other request could join a batch.

    A request whose body has arrived runs to this point without yielding, so a count of
    requests in progress cannot tell; the loop's queue of ready callbacks (CPython's asyncio)
    can: under load it holds the other connections' requests. Other loops: never alone.
    """
    return not getattr(asyncio.get_running_loop(), "_ready", True)


def _freeze_heap() -> None:
    """Move what start-up made (modules, models) out of the garbage collector's sight.

    The libraries a model needs leave millions of long-lived objects; every full collection
    would walk them all, a pause of a tenth of a second that shows up in the latency's p99.
    """
    import gc

    gc.collect()
    gc.freeze()


#: how long a thread may keep the interpreter lock from a waiting one (CPython's default 5 ms):
#: the prediction log's writer (1.5-4.5 ms per thousand records) and the registry's poll (1.3 ms a
#: second) hold it in threads of their own, and a request arriving meanwhile waited for it
SWITCH_SECONDS = 0.0005


@functools.cache
def _child(metric: Any, *labels: str) -> Any:
    """A metric's child for these label values, looked up once (``labels()`` costs a lock)."""
    return metric.labels(*labels)


#: an answer written straight to ASGI: status, body, extra headers (a content type among them
#: when it is not JSON)
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


class Server:
    """State shared by the routes of one worker process: the pool, access, loggers."""

    def __init__(self, settings: Settings, options: ServeOptions, loader: Loader, state: State) -> None:
        self.settings, self.options = settings, options
        self.pool = ModelPool(settings, loader, options.poll_seconds, state)
        self.access = Access(settings, options.auth, options.auth_cache_seconds, options.token)
        self.loggers: dict[str, AsyncPredictionLogger] = {}

    def logger(self, usecase: str) -> AsyncPredictionLogger:
        if usecase not in self.loggers:
            self.loggers[usecase] = AsyncPredictionLogger(PredictionLog(self.settings, usecase))
        return self.loggers[usecase]

    def deployment(self, caller: Caller, usecase: str) -> Deployment:
        """The use case's deployment; 404 (naming only the caller's models) unless it is served
        and the caller may view it."""
        found = self.pool.deployments.get(usecase)
        if found is None or not caller.may(Action.view, usecase):
            if not self.pool.ready:
                raise NotReady("the server is still loading its models")
            raise not_served(caller, usecase, self.pool.deployments)
        return found

    def _log(self, rid: str, batcher: MicroBatcher, columns: protocols.Columns, p: Prediction,
             latency: float, source: str) -> None:
        if not self.options.log_predictions:
            return
        logger, ts, version = self.logger(batcher.model.usecase), datetime.now(UTC), batcher.model.version
        names = list(columns)
        rows = len(p.labels)
        for i in range(rows):
            record = {n: columns[n][i] for n in names}
            record.update(request_id=rid if rows == 1 else f"{rid}/{i}", ts=ts, model_version=version,
                          latency_seconds=latency, prediction=p.labels[i],
                          probability=None if p.probabilities is None else p.probabilities[i])
            logger.log(record, source)

    async def _shadow(self, challenger: MicroBatcher, columns: protocols.Columns, rid: str) -> None:
        """The challenger predicts a copy; only the log sees it."""
        started = time.perf_counter()
        try:
            if challenger.model.validator.names != list(columns):
                columns = challenger.model.validator.columns_of(columns)
            p = await challenger.submit(columns, protocols.rows_in(columns))
        except Exception as exc:  # noqa: BLE001 - a shadow never affects the answer
            log.warning("shadow %s v%s: %s", challenger.model.usecase, challenger.model.version, exc)
            return
        self._log(rid, challenger, columns, p, time.perf_counter() - started, "shadow")

    @staticmethod
    async def _predict(batcher: MicroBatcher, columns: protocols.Columns, timeout: float) -> Prediction:
        """The batcher's prediction, or 504 past ``timeout``: a queued request is given up when
        the timer fires; one predicted at once on the event loop (alone, or the only one in its
        batch) blocks the timer, so its time is measured."""
        submitted = time.perf_counter()
        future = batcher.submit(columns, protocols.rows_in(columns), alone=_alone())
        timer = asyncio.get_running_loop().call_later(timeout, future.cancel)
        try:
            p = await future
        except asyncio.CancelledError:
            if future.cancelled() and not timer.cancelled():
                raise TimedOut.past(timeout) from None
            raise
        finally:
            timer.cancel()
        if time.perf_counter() - submitted > timeout:
            raise TimedOut.past(timeout)
        return p

    def default_model(self) -> str:
        """The use case ``POST /invocations`` scores: the configured one, or the only one served."""
        if self.options.default_model is not None:
            return self.options.default_model
        served = sorted(self.pool.deployments)
        if len(served) != 1:
            raise NotFound(f"/invocations scores the default model, and {len(served)} use cases are served: "
                           "start the server with --default-model NAME, or post to /invocations/NAME")
        return served[0]

    async def infer(self, caller: Caller, usecase: str, wanted: str | None, headers: dict[str, str],
                    receive: Receive, wire: Wire) -> Answer:
        """Answer one prediction request of an authenticated caller: (status, body, extra headers)."""
        started = time.perf_counter()
        version = "none"
        label = usecase_label(usecase, self.pool.deployments)
        in_flight = _child(IN_FLIGHT, label)
        in_flight.inc()
        try:
            deployment = self.deployment(caller, usecase)
            body = await read_body(receive, headers.get("content-length"), self.options.max_body_bytes)
            body = decoded(body, headers.get("content-encoding"), self.options.max_body_bytes)
            deployment = self.deployment(caller, usecase)  # a swap may have happened while the body arrived
            if wanted is not None:
                batcher = _served_version(deployment, wanted)
            elif deployment.challenger is not None and \
                    to_challenger(deployment.policy.canary, headers.get("x-request-key")):
                batcher = deployment.challenger
            else:
                batcher = deployment.champion
            version = batcher.model.version
            request = wire.parse(batcher.model, body, headers)
            columns = request.columns
            rid = request.request_id or headers.get("x-request-id") or f"{random.getrandbits(128):032x}"
            p = await self._predict(batcher, columns, deployment.policy.timeout)
            latency = time.perf_counter() - started
            self._log(rid, batcher, columns, p, latency, "rest")
            if deployment.policy.shadow and deployment.challenger is not None and batcher is deployment.champion:
                asyncio.get_running_loop().create_task(self._shadow(deployment.challenger, columns, rid))
            _child(REQUESTS, label, version, "200").inc()
            _child(LATENCY, label, version).observe(latency)
            answer, extra = wire.answer(batcher.model, rid, p, request)
            answer, packed = _compressed(answer, headers.get("accept-encoding"))
            notice = [(TRANSPARENCY, header_text(deployment.notice))] if deployment.notice else []
            return 200, answer, [*extra, *packed, (b"x-request-id", rid.encode("latin-1", "replace")),
                                 (b"x-model-version", version.encode()), *notice]
        except ValueloopError as exc:
            return self._refused(exc, wire, label, version)
        except Exception:  # noqa: BLE001 - the trace goes to the log, never to the client
            return self._refused(InternalError.logged(f"prediction for {usecase}", headers), wire, label, version)
        finally:
            in_flight.dec()


    @staticmethod
    def _refused(exc: ValueloopError, wire: Wire, label: str, version: str) -> Answer:
        status, body, content_type = wire.error(exc)
        _child(REQUESTS, label, version, str(status)).inc()
        return status, body, [] if content_type == protocols.JSON else [(b"content-type", content_type)]


_PLAIN = Plain()
_OIP = OpenInference()


def _wire_of(path: str) -> Wire:
    """The wire format a route that is not a prediction refuses in: its protocol's own."""
    return _OIP if path.startswith("/v2") else _PLAIN


def _guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Map valueloop's errors to their status and anything else to a bare 500, in the error
    format of the route's protocol."""

    async def guarded(request: Request) -> Response:
        wire = _wire_of(request.url.path)
        try:
            return await handler(request)
        except ValueloopError as exc:
            return _error(exc, wire)
        except Exception:  # noqa: BLE001 - the trace goes to the log, never to the client
            return _error(InternalError.logged(f"{request.method} {request.url.path}", request.headers), wire)

    return guarded


def create_app(settings: Settings, options: ServeOptions | None = None,
               loader: Loader | None = None, state: State = registry_state) -> Predictions:
    """The app over the registry (or, in a bundle, over a fixed ``state`` and ``loader``)."""
    from valueloop.deploy.model import load

    server = Server(settings, options or ServeOptions(), loader or load, state)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await server.pool.start()
        _freeze_heap()
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_SECONDS)
        try:
            yield
        finally:
            sys.setswitchinterval(switch)
        await server.pool.stop()
        for logger in server.loggers.values():
            await asyncio.to_thread(logger.close)

    async def live(_: Request) -> Response:
        return _json({"live": True})

    async def ready(_: Request) -> Response:
        return _json({"ready": server.pool.ready}, 200 if server.pool.ready else 503)

    async def v2(_: Request) -> Response:
        return _json({"name": "valueloop", "version": _version(),
                      "extensions": ["binary_tensor_data", "model_repository", "statistics"]})

    async def ping(_: Request) -> Response:
        """MLflow's scoring server's probe: ``\\n`` once the models are loaded."""
        return Response("\n", status_code=200 if server.pool.ready else 503, media_type="application/json")

    async def version(_: Request) -> Response:
        return Response(_version(), media_type="application/json")

    def served_model(request: Request) -> tuple[Deployment, MicroBatcher]:
        deployment = server.deployment(request.scope[CALLER], request.path_params["name"])
        version = request.path_params.get("version")
        return deployment, deployment.champion if version is None else _served_version(deployment, version)

    async def model_ready(request: Request) -> Response:
        deployment = server.deployment(request.scope[CALLER], request.path_params["name"])
        version = request.path_params.get("version")
        ok = version is None or deployment.by_version(version) is not None
        return _json({"name": deployment.usecase, "ready": ok}, 200 if ok else 404)

    async def model_metadata(request: Request) -> Response:
        deployment, batcher = served_model(request)
        return _json(protocols.oip_metadata(deployment.usecase, deployment.versions, batcher.model))

    async def model_config(request: Request) -> Response:
        """Triton's model configuration, as far as it applies: inputs, outputs, batching."""
        deployment, batcher = served_model(request)
        meta = protocols.oip_metadata(deployment.usecase, deployment.versions, batcher.model)
        return _json({"name": deployment.usecase, "platform": meta["platform"], "backend": "valueloop",
                      "max_batch_size": 0, "input": [{"name": i["name"], "data_type": f"TYPE_{i['datatype']}",
                                                      "dims": [-1]} for i in meta["inputs"]],
                      "output": [{"name": o["name"], "data_type": f"TYPE_{o['datatype']}", "dims": [-1]}
                                 for o in meta["outputs"]]})

    async def model_stats(request: Request) -> Response:
        """The serving counters of each served version, in the statistics extension's shape."""
        deployment = server.deployment(request.scope[CALLER], request.path_params["name"])
        wanted = request.path_params.get("version")
        counts = await asyncio.to_thread(statistics, deployment.usecase)
        stats = []
        for version in deployment.versions if wanted is None else [_served_version(deployment, wanted).model.version]:
            c = counts.get(version, {"success": 0.0, "fail": 0.0, "seconds": 0.0})
            stats.append({"name": deployment.usecase, "version": version, "inference_count": int(c["success"]),
                          "execution_count": int(c["success"]), "inference_stats": {
                              "success": {"count": int(c["success"]), "ns": int(c["seconds"] * 1e9)},
                              "fail": {"count": int(c["fail"]), "ns": 0}}})
        return _json({"model_stats": stats})

    async def repository_index(request: Request) -> Response:
        caller: Caller = request.scope[CALLER]
        return _json([{"name": d.usecase, "version": v, "state": "READY"}
                      for d in map(server.pool.deployments.get, caller.visible(server.pool.deployments)) if d
                      for v in d.versions])

    async def repository_change(request: Request) -> Response:
        server.deployment(request.scope[CALLER], request.path_params["name"])
        change = request.url.path.rsplit("/", 1)[1]
        raise ValueloopError(f"models are not {change}ed by request here: the registry decides what is served "
                             "(valueloop promote / rollback), and the server follows it")

    async def models(request: Request) -> Response:
        caller: Caller = request.scope[CALLER]
        shown = caller.visible(server.pool.deployments)
        return _json([{"name": d.usecase, "champion": d.champion.model.version,
                       "challenger": d.challenger.model.version if d.challenger else None,
                       "deploy": d.policy.model_dump()} for d in map(server.pool.deployments.get, shown) if d]
                     + [{"name": u, "failed_version": v, "error": e} for (u, v), e in server.pool.failures.items()
                        if caller.may(Action.view, u)])

    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        caller: Caller = request.scope[CALLER]
        text = exposition(None if caller.unrestricted else lambda u: caller.may(Action.view, u))
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def feedback(request: Request) -> Response:
        caller: Caller = request.scope[CALLER]
        usecase = request.path_params["name"]
        require(caller, await server.access.roles(caller, usecase), Action.label, usecase, server.pool.deployments)
        doc = protocols.parse_json(await read_body(request.receive, request.headers.get("content-length"),
                                                   server.options.max_body_bytes))
        if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
            raise InvalidInput("body: expected a list of {\"request_id\": ..., \"label\": ...} objects")
        missing = [f"[{i}]: needs request_id and label, and row for a request of several rows"
                   for i, d in enumerate(doc) if not {"request_id", "label"} <= set(d) <= {"request_id", "row", "label"}]
        missing += [f"[{i}].row: expected a row number (0, 1, ...), got {d['row']!r:.60}" for i, d in enumerate(doc)
                    if "row" in d and (type(d["row"]) is not int or d["row"] < 0)]
        if missing:
            raise InvalidInput(f"feedback is invalid ({len(missing)} problem(s)); nothing was stored:", problems=missing)
        for logger in server.loggers.values():  # labels may follow their predictions closely
            await asyncio.to_thread(logger.flush)
        pairs = [(row_id(d["request_id"], d.get("row")) if isinstance(d["request_id"], str) else d["request_id"],
                  d["label"]) for d in doc]
        result = await asyncio.to_thread(record_feedback, server.settings, caller.name, usecase, pairs)
        return _json(result.model_dump())

    async def openapi_document(_: Request) -> Response:
        return Response(openapi.document(), media_type="application/json")

    routes = [
        Route("/v2", v2), Route("/v2/health/live", live), Route("/v2/health/ready", ready),
        Route("/health/live", live), Route("/health/ready", ready), Route("/openapi.json", openapi_document),
        Route("/ping", ping), Route("/health", ping), Route("/version", version),
        Route("/v2/models/{name}", _guarded(model_metadata)),
        Route("/v2/models/{name}/versions/{version}", _guarded(model_metadata)),
        Route("/v2/models/{name}/ready", _guarded(model_ready)),
        Route("/v2/models/{name}/versions/{version}/ready", _guarded(model_ready)),
        Route("/v2/models/{name}/config", _guarded(model_config)),
        Route("/v2/models/{name}/versions/{version}/config", _guarded(model_config)),
        Route("/v2/models/{name}/stats", _guarded(model_stats)),
        Route("/v2/models/{name}/versions/{version}/stats", _guarded(model_stats)),
        Route("/v2/repository/index", _guarded(repository_index), methods=["POST"]),
        Route("/v2/repository/models/{name}/load", _guarded(repository_change), methods=["POST"]),
        Route("/v2/repository/models/{name}/unload", _guarded(repository_change), methods=["POST"]),
        Route("/feedback/{name}", _guarded(feedback), methods=["POST"]),
        Route("/models", _guarded(models)), Route("/metrics", _guarded(metrics)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _no_route, 405: _no_route})
    app.state.server = server
    return Predictions(server, app)


async def _no_route(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods answer in the error format of the path's protocol."""
    from starlette.exceptions import HTTPException

    status = exc.status_code if isinstance(exc, HTTPException) else 404
    refusal = NotFound(f"no route {request.method} {request.url.path[:128]}") if status == 404 else \
        MethodNotAllowed(f"{request.method} is not allowed on {request.url.path[:128]}")
    response = _error(refusal, _wire_of(request.url.path))
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    return response


@functools.cache
def _version() -> str:
    from importlib.metadata import version

    return version("valueloop")


_PREDICT = re.compile(r"^/(?:predict/(?P<plain>[^/]+)|invocations/(?P<mlflow>[^/]+)|models/(?P<mlflow2>[^/]+)/"
                      r"invocations|v2/models/(?P<oip>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer|"
                      r"(?P<default>invocations))$")


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    typed = [] if any(name == b"content-type" for name, _ in extra) else [(b"content-type", protocols.JSON)]
    await send({"type": "http.response.start", "status": status, "headers": [
        *typed, (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


class Predictions:
    """The ASGI app: the caller is authenticated before anything else (no route, no model name,
    no body is looked at for an anonymous caller); then prediction requests go straight to
    :meth:`Server.infer` (no router, no request object: this is the hot path) and everything
    else to the Starlette app."""

    def __init__(self, server: Server, app: Starlette) -> None:
        self.server, self.app = server, app
        mlflow = MLflow(compat=server.options.mlflow_compat)
        self.wires: dict[str, Wire] = {"plain": _PLAIN, "mlflow": mlflow, "mlflow2": mlflow, "default": mlflow,
                                       "oip": _OIP}

    async def _caller(self, scope: Scope, headers: dict[str, str], wire: Wire) -> Caller | Answer:
        """The authenticated caller, or the answer that refuses the request (and closes the
        connection: the unread rest of a body is not worth draining)."""
        client = scope["client"][0] if scope.get("client") else "unknown"
        try:
            return await self.server.access.caller(headers.get("authorization", ""), self.server.pool.deployments,
                                                   client)
        except ValueloopError as exc:
            refusal = exc
            extra = [(b"www-authenticate", b"Bearer"), (b"connection", b"close")]
            if isinstance(exc, TooManyRequests):
                extra.append((b"retry-after", str(exc.retry_after).encode()))
        except Exception:  # noqa: BLE001 - e.g. the database is down: the trace goes to the log
            refusal, extra = InternalError.logged("checking a token", headers), []
        status, body, content_type = wire.error(refusal)
        return status, body, [(b"content-type", content_type), *extra]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        match = _PREDICT.match(scope["path"])
        kind = next(k for k in self.wires if match.group(k) is not None) if match else ""
        wire = self.wires[kind] if match else _wire_of(scope["path"])
        caller = await self._caller(scope, headers, wire)
        if not isinstance(caller, Caller):
            if match is not None and kind != "default":
                label = usecase_label(match.group(kind), self.server.pool.deployments)
                _child(REQUESTS, label, "none", str(caller[0])).inc()
            await _answer(send, *caller)
            return
        if match is None:
            scope[CALLER] = caller
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            status, body, content_type = wire.error(MethodNotAllowed(f"{scope['method']} is not allowed on "
                                                                     f"{scope['path'][:128]}; use POST"))
            await _answer(send, status, body, [(b"content-type", content_type), (b"allow", b"POST")])
            return
        try:
            usecase = self.server.default_model() if kind == "default" else match.group(kind)
        except ValueloopError as exc:
            status, body, content_type = wire.error(exc)
            await _answer(send, status, body, [(b"content-type", content_type)])
            return
        await _answer(send, *await self.server.infer(caller, usecase, match.group("version"), headers, receive, wire))


def app_from_env() -> Predictions:
    """The app factory uvicorn's workers call (``valueloop serve --workers N``)."""
    import json

    return create_app(load_settings(), ServeOptions(**json.loads(os.environ.get(OPTIONS_ENV, "{}"))))

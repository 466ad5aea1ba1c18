"""Operate fixtures: the churn use case with a dataset version (the drift reference) or with a
champion in production, a month of logged traffic, and real local alert receivers: an SMTP
server (aiosmtpd) and an HTTP receiver (http.server in a thread)."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from valueloop.config import Settings
from valueloop.demo.operate import requests_of
from valueloop.examples import load_generator
from valueloop.outcomes.spec import parse_spec
from valueloop.outcomes.usecases import get_usecase, spec_of, update_usecase
from valueloop.store import session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_operate(settings: Settings, operate: dict[str, Any], name: str = "churn", **model: Any) -> None:
    """Replace the use case's operate section (and parts of its model section) as ana."""
    with session(settings) as s:
        spec = spec_of(get_usecase(s, name)).model_dump(mode="json", by_alias=True)
        spec["operate"] = operate
        spec["model"] |= model
        update_usecase(s, "ana", parse_spec(spec))


def write_month(project: Path, rows: int, seed: int, period: int) -> None:
    """The CRM export the next ingest reads."""
    (project / "data").mkdir(exist_ok=True)
    pacsv.write_csv(load_generator("churn").generate(rows, seed, period), project / "data" / "customers.csv")


ONLY_BASELINE = {"candidates": [{"name": "logistic", "kind": "logistic", "baseline": True}]}


@pytest.fixture
def ingested(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> Path:
    """churn with dataset version 0 (period 0) as its drift reference, no model yet."""
    from valueloop.data import ingest

    name, project = approved_usecase(settings)
    write_month(project, 3000, 7, 0)
    with session(settings) as s:
        ingest(s, settings, "dave", name, project_dir=project)
    return project


@pytest.fixture
def in_production(settings: Settings, ingested: Path) -> Path:
    """churn with a champion (the logistic baseline only, to train fast) and in production."""
    from valueloop.learn.registry import accept, promote
    from valueloop.learn.training import train
    from valueloop.outcomes.lifecycle import State
    from valueloop.outcomes.usecases import advance

    set_operate(settings, {}, **ONLY_BASELINE)
    with session(settings) as s:
        report = train(s, settings, "dana", "churn")
        assert report.registered is not None
        version = report.registered.version
        accept(s, "olivia", "churn", version, accepted=True, comment="meets the targets")
        promote(s, settings, "dana", "churn", version, "champion")
        advance(s, "devon", "churn", State.in_production, "deployed")
    return ingested


@dataclass
class Traffic:
    ids: list[str]
    truth: list[int]
    table: pa.Table


def log_traffic(settings: Settings, rows: int, seed: int, period: int, *, ts: Any = None,
                drop: tuple[str, ...] = ()) -> Traffic:
    """A month of requests logged as served, with a made-up but calibrated-looking probability
    (the monitor needs no model to watch the inputs)."""
    from valueloop.deploy.predlog import PredictionLog

    raw = load_generator("churn").generate(rows, seed, period)
    inputs = requests_of(raw).drop_columns(list(drop))
    rng = np.random.default_rng(seed)
    truth = raw["churned"].to_pylist()
    probability = np.clip(np.asarray(truth) * 0.5 + rng.random(rows) * 0.5, 0, 1)
    ids = [uuid.uuid4().hex for _ in range(rows)]
    table = inputs.append_column("request_id", pa.array(ids)).append_column(
        "model_version", pa.array(["1"] * rows)).append_column(
        "prediction", pa.array((probability >= 0.5).astype(int))).append_column(
        "probability", pa.array(probability)).append_column("latency_seconds", pa.array(rng.random(rows) / 50))
    if ts is not None:
        table = table.append_column("ts", pa.array([ts] * rows, pa.timestamp("us", tz="UTC")))
    PredictionLog(settings, "churn").append(table, source="rest")
    return Traffic(ids=ids, truth=truth, table=table)


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    """A webhook endpoint on loopback that records every JSON body posted to it."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            length = int(self.headers["Content-Length"])
            receiver.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def slow_receiver() -> Iterator[str]:
    """A webhook that accepts the connection and never answers (a timeout)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    listener.close()


@dataclass
class Mailbox:
    port: int
    messages: list[Any] = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    mailbox = Mailbox(port=free_port())

    class Keep(Message):
        def handle_message(self, message: Any) -> None:
            mailbox.messages.append(message)

    controller = Controller(Keep(), hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    yield mailbox
    controller.stop()


@pytest.fixture
def refusing_smtp() -> Iterator[int]:
    """An SMTP server that refuses every recipient (550), so no message is accepted."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class Refuse:
        async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str,  # noqa: N802
                              options: list[str]) -> str:
            return "550 mailbox unavailable: refused"

    port = free_port()
    controller = Controller(Refuse(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()

"""Operate fixtures: the churn use case with a dataset version (the drift reference) or with a
champion in production, and real local alert receivers: an SMTP server (aiosmtpd) and an HTTP
receiver (http.server in a thread)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from operate.support import ONLY_BASELINE, free_port, prepare_reference, set_operate

from valueloop.config import Settings
from valueloop.store import session


@pytest.fixture
def ingested(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> Path:
    return prepare_reference(settings, approved_usecase)


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

"""The control plane's edge on a real uvicorn (issue 14): the token is checked and the body limit
applied before any body is read, and failed token attempts from one client are rate-limited."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from outcomes.support import add_people, churn_data
from server.conftest import Api, server  # noqa: F401 - the real-uvicorn fixture of the API tests

from valueloop.security.ratelimit import FAILED_AUTHENTICATIONS
from valueloop.server.app import MAX_BODY_BYTES

HUGE = 200_000_000  # the attack's 200 MB, announced but never sent


def _first_reply(api: Api, head: str, first_chunk: bytes) -> bytes:
    """Send a request's head and only the first piece of its body; the server's whole reply, after
    which it closes the connection rather than drain the rest."""
    address = urlsplit(api.url)
    reply = b""
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        sock.sendall(head.encode() + first_chunk)
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except TimeoutError:
            pytest.fail(f"the server waits for the rest of the body instead of answering: {reply!r}")
    return reply


def _head(path: str, framing: str, token: str | None = None) -> str:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: valueloop\r\nContent-Type: application/json\r\n"
            f"{auth}{framing}\r\n\r\n")


@pytest.fixture
def api(settings, server) -> Api:  # noqa: F811 - the fixture imported above
    add_people(settings)
    return server(settings)


def test_an_anonymous_body_is_refused_before_it_is_read(api):
    for framing, first in [(f"Content-Length: {HUGE}", b"{" + b" " * 65535),
                           ("Transfer-Encoding: chunked", b"10000\r\n{" + b" " * 65535 + b"\r\n")]:
        reply = _first_reply(api, _head("/api/usecases", framing), first)
        assert reply.startswith(b"HTTP/1.1 401 "), reply[:200]
        assert b"missing bearer token" in reply
        reply = _first_reply(api, _head("/api/usecases", framing, "not-a-token"), first)
        assert reply.startswith(b"HTTP/1.1 401 "), reply[:200]


def test_a_body_over_the_limit_is_refused_before_it_is_read(api):
    reply = _first_reply(api, _head("/api/usecases", f"Content-Length: {HUGE}", api.tokens["olivia"]), b"{")
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert f"the limit of {MAX_BODY_BYTES} bytes".encode() in reply


def test_a_streamed_body_is_counted_and_cut_at_the_limit(api):
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "churn", "title": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            yield b"x" * 65536

    refused = httpx.post(api.url + "/api/usecases", content=chunks(), timeout=120,
                         headers={"Authorization": f"Bearer {api.tokens['olivia']}"})
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"] == {"type": "TooLarge", "problems": [],
                                       "message": f"body is larger than the limit of {MAX_BODY_BYTES} bytes"}
    created = api("POST", "/api/usecases", "olivia", json=churn_data())
    assert created.status_code == 201, created.text


def test_failed_token_attempts_are_rate_limited_per_client(api):
    for attempt in range(FAILED_AUTHENTICATIONS.amount):
        assert api("GET", "/api/me", token=f"guess-{attempt}").status_code == 401
    blocked = api("GET", "/api/me", token="one-more-guess")
    assert blocked.status_code == 429, blocked.text
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    assert "too many failed authentications" in blocked.json()["error"]["message"]
    # while blocked, a right guess cannot be told from a wrong one
    assert api("GET", "/api/me", "olivia").status_code == 429
    # another client is not blocked, and the health check needs no token
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with other:
        me = other.get(api.url + "/api/me", headers={"Authorization": f"Bearer {api.tokens['olivia']}"})
        assert (me.status_code, me.json()["name"]) == (200, "olivia")
    assert httpx.get(api.url + "/health").status_code == 200

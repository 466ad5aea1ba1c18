"""``valueloop serve --workers N``: the socket its workers listen on. Bound as uvicorn binds it,
the connections accepted on it kept Nagle's algorithm on (asyncio turns it off only for a socket
that says TCP), so each keep-alive answer after the first waited ~40 ms for the client's delayed
ACK: two workers served 0.3x of what one did (benchmarks/serve_workers.py)."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from deploy_support import free_port

from valueloop.cli.serve import listening_socket


def _accepted_nodelay(listener: socket.socket) -> int:
    """TCP_NODELAY of a connection an asyncio server accepts on ``listener``, as a worker's does."""
    async def accept_one() -> int:
        found: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted = transport.get_extra_info("socket")
                found.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        with socket.create_connection(listener.getsockname()[:2]):
            value = await asyncio.wait_for(found, 30)
        server.close()
        return value

    return asyncio.run(accept_one())


def test_connections_accepted_on_the_workers_socket_send_at_once() -> None:
    config = uvicorn.Config("valueloop.deploy.app:app_from_env", host="127.0.0.1", port=free_port(), workers=2)
    assert _accepted_nodelay(config.bind_socket()) == 0  # uvicorn's own: the bug this guards against
    config = uvicorn.Config("valueloop.deploy.app:app_from_env", host="127.0.0.1", port=free_port(), workers=2)
    assert _accepted_nodelay(listening_socket(config)) != 0

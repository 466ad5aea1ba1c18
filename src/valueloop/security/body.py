"""A request body read whole from ASGI, bounded before and while it is read."""

from __future__ import annotations

from starlette.types import Receive

from valueloop.errors import TooLarge, ValueloopError


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body from the ASGI ``receive``; past ``limit`` bytes, announced by Content-Length
    or streamed, refused with 413 before the rest is read."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body of {int(declared)} bytes is larger than the limit of {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValueloopError("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)

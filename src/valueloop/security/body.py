"""A request body read whole from ASGI, bounded before and while it is read, and after it is
inflated."""

from __future__ import annotations

from starlette.types import Receive

from valueloop.errors import InvalidInput, TooLarge, UnsupportedMediaType, ValueloopError


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


def decoded(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body with its ``Content-Encoding`` (gzip or deflate) undone, refused with 413 when it
    inflates past ``limit`` bytes: a small compressed body must not become a large one."""
    import zlib

    kind = (encoding or "identity").strip().lower()
    if kind == "identity":
        return body
    if kind not in ("gzip", "deflate"):
        raise UnsupportedMediaType(f"Content-Encoding: {kind[:32]!r} is not supported; use gzip, deflate or none")
    inflater = zlib.decompressobj(wbits=31 if kind == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"body: not valid {kind} data ({exc})") from None
    if len(out) > limit:
        raise TooLarge(f"body inflates past the limit of {limit} bytes")
    if not inflater.eof:
        raise InvalidInput(f"body: the {kind} data ends before its end marker")
    return out

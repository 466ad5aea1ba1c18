"""``valueloop server``: the control-plane HTTP API."""

from __future__ import annotations

import typer


def server(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8700, "--port"),
) -> None:
    """Serve the control-plane API (OpenAPI docs at /docs); authenticate with bearer tokens."""
    import uvicorn

    from valueloop.server.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")

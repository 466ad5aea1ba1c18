"""``valueloop demo``."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    workspace: Path = typer.Option(
        None, "--workspace", help="Where the demo works (default: <home>/demo); emptied first."
    ),
    serve: bool = typer.Option(False, "--serve", help="Then keep the console and API running on the demo's "
                                                     "workspace until interrupted."),
) -> None:
    """Run the whole loop on the bundled churn example, end to end, in a fresh workspace."""
    from valueloop.demo import run

    ctx = run(workspace=workspace)
    if serve:
        from valueloop.cli.server import serve_control_plane
        from valueloop.demo.console import CONSOLE_PORT

        serve_control_plane(ctx.settings, "127.0.0.1", CONSOLE_PORT, scheduler=True)

"""``valueloop demo``."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    workspace: Path = typer.Option(
        None, "--workspace", help="Where the demo works (default: <home>/demo); emptied first."
    ),
) -> None:
    """Run the whole loop on the bundled churn example, end to end, in a fresh workspace."""
    from valueloop.demo import run

    run(workspace=workspace)

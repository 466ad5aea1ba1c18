"""``valueloop demo``: the whole loop on the bundled churn example, in a fresh workspace.

Each phase adds its chapter as a module with a ``run(ctx)`` function, listed in ``CHAPTERS``
in loop order; a chapter reads what earlier ones left in the :class:`DemoContext`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from valueloop.config import Settings, load_settings


@dataclass
class DemoContext:
    settings: Settings
    workspace: Path
    console: Console
    #: values chapters hand on to later ones (file paths, versions, ...)
    state: dict[str, Any] = field(default_factory=dict)
    chapters_begun: int = 0

    def chapter(self, title: str) -> None:
        """Open the next chapter; numbered by position, so reordering chapters needs no edits."""
        self.chapters_begun += 1
        self.console.rule(f"[bold]{self.chapters_begun} · {title}")


def _chapters() -> list[Callable[[DemoContext], None]]:
    from valueloop.demo import batch, console, data, deploy, learn, operate, outcomes, recovery

    return [outcomes.run, data.run, learn.run, deploy.run, batch.run, operate.run, recovery.run, console.run]


def run(console: Console | None = None, workspace: Path | None = None) -> DemoContext:
    """Run every chapter in a fresh workspace (its own home, database and files)."""
    console = console or Console()
    base = load_settings()
    workspace = (workspace or base.home / "demo").resolve()
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    settings = load_settings({"VALUELOOP_HOME": str(workspace)})
    ctx = DemoContext(settings=settings, workspace=workspace, console=console)
    console.print(f"valueloop demo in [bold]{workspace}[/bold] (metadata: {settings.database_url})")
    for chapter in _chapters():
        chapter(ctx)
    console.rule("[bold green]demo complete")
    return ctx

"""``valueloop server``: the web console, the control-plane HTTP API and the in-process scheduler."""

from __future__ import annotations

import typer

from valueloop.cli._common import reconcile_aliases
from valueloop.config import Settings


def server(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8700, "--port"),
    scheduler: bool = typer.Option(
        True, "--scheduler/--no-scheduler",
        help="Run the monitors, retraining policies, scheduled batch jobs, backups and retention in this process.",
    ),
) -> None:
    """Serve the web console at /, the control-plane API at /api (OpenAPI docs at /docs), and run
    the loop's schedules."""
    from valueloop.config import load_settings

    serve_control_plane(load_settings(), host, port, scheduler)


def serve_control_plane(settings: Settings, host: str, port: int, scheduler: bool) -> None:
    """Mend what killed processes left, then serve until interrupted (``valueloop server`` and
    ``valueloop demo --serve``)."""
    import uvicorn

    from valueloop.deploy.schedule import start_scheduler
    from valueloop.operate.retention import start_retention
    from valueloop.operate.scheduler import start_monitoring
    from valueloop.outcomes.audit import start_head_export
    from valueloop.recovery.doctor import repair_at_start
    from valueloop.recovery.schedule import start_backups
    from valueloop.server.app import create_app

    repair_at_start(settings)  # what a killed process left half-written is mended before serving
    reconcile_aliases(settings)
    # the audit's head is exported whatever runs the schedules: it is how a truncation shows
    running = [start_head_export(settings)]
    if scheduler:
        backups = start_backups(settings)
        running += [start_monitoring(settings), start_scheduler(settings), start_retention(settings), *([backups] if backups else [])]
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    finally:
        for background in running:
            background.shutdown(wait=False)

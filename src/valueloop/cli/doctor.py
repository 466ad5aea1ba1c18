"""``valueloop doctor``: what a killed process left half-written, and ``--repair`` to mend it."""

from __future__ import annotations

import typer

from valueloop.cli._common import JsonOption, actor, console, show, table


def doctor(
    ctx: typer.Context,
    usecase: str = typer.Option(None, "--usecase", help="Only this use case (as its operations)."),
    repair: bool = typer.Option(False, "--repair", help="Roll back and remove what was found."),
    as_json: bool = JsonOption,
) -> None:
    """Find pending intents, Delta versions without a row, unreferenced data files, staging folders
    of killed ingests, MLflow runs left RUNNING, model versions valueloop does not know, batch
    outputs a killed job was publishing and prediction-log files a killed writer left; exit 1 when
    something is left unrepaired. The admin examines every use case."""
    from valueloop.config import load_settings
    from valueloop.recovery.doctor import doctor as doctor_
    from valueloop.store import session

    settings = load_settings()
    with session(settings) as s:
        report = doctor_(s, settings, actor(ctx), usecase, repair=repair)
    show(report, as_json, lambda: table(
        "doctor" + (" (repaired)" if repair else ""), ["kind", "use case", "object", "found", "repair"],
        [(f.kind, f.usecase, f.target, f.detail, ("done: " if f.repaired else "") + f.repair)
         for f in report.findings]) if report.findings else console().print("nothing half-written"))
    if not report.clean:
        raise typer.Exit(1)

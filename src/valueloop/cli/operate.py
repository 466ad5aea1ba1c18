"""``valueloop monitor|alerts|kpi|retrain``: operations of a use case in production."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from valueloop.cli._common import JsonOption, console, group, show, table
from valueloop.cli.remote import Route, answer, call, segment, served

kpi_app = group("Business KPIs reported by the owner's systems, tracked against the targets.")
alerts_app = group("Alerts raised by the monitors: list them, acknowledge them.")


def register(app: typer.Typer) -> None:
    app.add_typer(kpi_app, name="kpi")
    app.add_typer(alerts_app, name="alerts")
    app.command("monitor")(monitor)
    app.command("retrain")(retrain)
    app.command("compact")(compact)


def _moment(text: str | None, field: str) -> datetime | None:
    from datetime import UTC

    from valueloop.errors import InvalidInput

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field}: expected an ISO date or time such as 2026-05-01T12:00, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@served
def monitor(
    ctx: typer.Context,
    usecase: str,
    since: str = typer.Option(None, "--since", help="Only predictions from this time on (ISO, UTC)."),
    until: str = typer.Option(None, "--until", help="Only predictions before this time (ISO, UTC)."),
    report: str = typer.Option(None, "--report", help="Also write the HTML monitoring report here "
                                                      "(a path or s3://BUCKET/KEY)."),
    as_json: bool = JsonOption,
) -> None:
    """Run the monitor over the prediction log: drift, performance, health, alerts (operations)."""
    from valueloop.config import load_settings
    from valueloop.operate.monitor import MonitorReport, run_monitor

    from valueloop.storage import Location

    start, end = _moment(since, "--since"), _moment(until, "--until")
    target = Location.parse(report, "--report") if report is not None else None  # refused before the run
    window = {"since": start and start.isoformat(), "until": end and end.isoformat()}
    result = answer(ctx, Route("POST", f"/api/usecases/{segment(usecase)}/monitor", params=window), MonitorReport,
                    lambda who: run_monitor(load_settings(), who, usecase, start, end))
    if target is not None:
        _write_report(ctx, usecase, result, target)
    show(result, as_json, lambda: _render(result, report))


def _write_report(ctx: typer.Context, usecase: str, result, where) -> None:  # type: ignore[no-untyped-def]
    from valueloop.operate.kpis import list_kpis
    from valueloop.operate.report import render

    history = call(ctx, Route("GET", f"/api/usecases/{segment(usecase)}/kpis"), list_kpis, usecase)
    if where.is_local:
        Path(where.path).parent.mkdir(parents=True, exist_ok=True)
    with where.filesystem.open_output_stream(where.path) as out:
        out.write(render(result, history).encode())


@served
def compact(ctx: typer.Context, usecase: str, as_json: bool = JsonOption) -> None:
    """Rewrite each past day of the prediction log as one file (operations; the server does it daily)."""
    from valueloop.config import load_settings
    from valueloop.deploy.predlog import Compaction
    from valueloop.operate.compaction import compact_log

    done = answer(ctx, Route("POST", f"/api/usecases/{segment(usecase)}/predictions/compact"), Compaction,
                  lambda who: compact_log(load_settings(), who, usecase))
    show(done, as_json, lambda: console().print(
        f"{usecase}: {done.files} file(s) of {done.days} day(s) compacted into {done.days}, {done.rows} row(s)"))


def _render(result, report: str | None) -> None:  # type: ignore[no-untyped-def]
    out = console()
    out.print(f"[bold]{result.usecase}[/bold]: windows of {result.window}, reference dataset "
              f"version {result.reference_version}")
    if result.message:
        out.print(f"[yellow]{result.message}[/yellow]")
    for problem in result.problems:
        out.print(f"left out: {problem}", style="yellow", markup=False)
    rows = []
    for w in result.windows:
        shown = w.estimate if w.estimated else w.performance
        metric = next((f"{k} {shown[k]:.3f}" for k in ("roc_auc", "accuracy", "rmse") if k in shown), "")
        rows.append((f"{w.start:%Y-%m-%d %H:%M}", w.rows, w.labeled,
                     f"{len(w.drifted)}/{len(w.drift)}" + (" DRIFT" if w.dataset_drift else ""),
                     ", ".join(w.drifted), metric + (" (estimated)" if w.estimated else ""),
                     "; ".join(w.problems)))
    if rows:
        table("windows", ["start", "predictions", "labeled", "drifted", "columns", "performance", "problems"], rows)
    if result.health.error_rate is not None:
        out.print(f"error rate {result.health.error_rate:.2%} of {result.health.requests:g} requests")
    for alert in result.alerts:
        out.print(f"[red]alert {alert.id}[/red] {alert.message} ({alert.status})")
    if result.retrain:
        out.print(f"[yellow]retraining due ({result.retrain}): `valueloop retrain {result.usecase}`[/yellow]")
    if report is not None:
        out.print(f"report written to {report}")


@kpi_app.command("record")
@served
def kpi_record(
    ctx: typer.Context,
    usecase: str,
    metric: str = typer.Argument(..., help="The business KPI's name in valueloop.yaml."),
    value: float = typer.Argument(...),
    at: str = typer.Option(None, "--at", help="When it was measured (ISO, UTC); default now."),
    as_json: bool = JsonOption,
) -> None:
    """Record one measured value of a business KPI (owner or analyst)."""
    from valueloop.operate.kpis import record_kpi

    moment = _moment(at, "--at")
    body = {"metric": metric, "value": value, "at": moment and moment.isoformat()}
    row = call(ctx, Route("POST", f"/api/usecases/{segment(usecase)}/kpis", json=body),
               record_kpi, usecase, metric, value, moment)
    show(row, as_json, lambda: console().print(
        f"{row.metric} = {row.value:g} on cycle {row.cycle}: target {row.target} "
        + ("[green]met[/green]" if row.met else "[red]missed[/red]")))


@kpi_app.command("list")
@served
def kpi_list(ctx: typer.Context, usecase: str, metric: str = typer.Option(None, "--metric"),
             as_json: bool = JsonOption) -> None:
    """Every reported value, oldest first, against its target."""
    from valueloop.operate.kpis import list_kpis

    rows = call(ctx, Route("GET", f"/api/usecases/{segment(usecase)}/kpis", params={"metric": metric}),
                list_kpis, usecase, metric)
    show(rows, as_json, lambda: table(
        f"business KPIs of {usecase}", ["at", "metric", "value", "target", "met", "cycle", "by"],
        [(f"{r.at:%Y-%m-%d %H:%M}", r.metric, f"{r.value:g}", r.target, "yes" if r.met else "no", r.cycle,
          r.reported_by) for r in rows]))


@alerts_app.command("list")
@served
def alerts_list(
    ctx: typer.Context,
    usecase: str = typer.Argument(None, help="Only this use case's alerts."),
    status: str = typer.Option(None, "--status", help="open, acknowledged or failed."),
    as_json: bool = JsonOption,
) -> None:
    """Alerts of the use cases you are a member of."""
    from valueloop.operate.alerts import list_alerts

    rows = call(ctx, Route("GET", "/api/alerts", params={"usecase": usecase, "status": status}),
                list_alerts, usecase, status)
    show(rows, as_json, lambda: table(
        "alerts", ["id", "use case", "rule", "message", "status", "seen", "deliveries", "raised"],
        [(a.id, a.usecase, a.rule, a.message, a.status, a.occurrences,
          ", ".join(f"{r}: {'ok' if d.delivered else f'failed ({d.error})'} after {d.attempts}"
                    for r, d in a.deliveries.items()),
          f"{a.created_at:%Y-%m-%d %H:%M}") for a in rows]))


@alerts_app.command("ack")
@served
def alerts_ack(ctx: typer.Context, alert_id: int, comment: str = typer.Option(None, "--comment", "-m"),
               as_json: bool = JsonOption) -> None:
    """Acknowledge an alert (operations)."""
    from valueloop.operate.alerts import acknowledge

    row = call(ctx, Route("POST", f"/api/alerts/{alert_id}/ack", json={"comment": comment}),
               acknowledge, alert_id, comment)
    show(row, as_json, lambda: console().print(f"alert {row.id} acknowledged by {row.acknowledged_by}"))


@served
def retrain(
    ctx: typer.Context,
    usecase: str,
    as_json: bool = JsonOption,
) -> None:
    """Run the retraining loop now: new cycle, new data, challenger, comparison, promotion or the
    owner's decision (operations)."""
    from valueloop.config import load_settings
    from valueloop.operate.retrain import RetrainView
    from valueloop.operate.retrain import retrain as run

    result = answer(ctx, Route("POST", f"/api/usecases/{segment(usecase)}/retrain"), RetrainView,
                    lambda who: run(load_settings(), who, usecase, "manual"))

    def render() -> None:
        table(f"retraining #{result.id} of {usecase}", ["step", "as", "detail"],
              [(s.step, s.performed_as or "", ", ".join(f"{k}={v}" for k, v in s.detail.items())) for s in result.steps])
        if result.status != "failed":
            colour = "green" if result.status == "promoted" else "yellow"
            console().print(f"[{colour}]{result.status}[/{colour}]: {result.decision}")

    show(result, as_json, render)
    if result.status == "failed":  # the exit code of the error the loop stopped on (7: a closed gate)
        from valueloop.errors import by_name

        raise by_name(result.error or "ValueloopError")(f"retraining #{result.id} of {usecase} failed: "
                                                        f"{result.decision}")
    if result.status == "failed":
        raise typer.Exit(1)

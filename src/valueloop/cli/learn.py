"""``valueloop train|reproduce|runs|models|accept|promote``: candidates, the registry, acceptance."""

from __future__ import annotations

from typing import Any

import typer

from valueloop.cli._common import JsonOption, console, report_half_written, show, table
from valueloop.cli.remote import Route, answer, call, segment, served


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _render_training(report: Any) -> None:
    columns = ["candidate", "kind", "status", report.primary_metric, "tests", "trials", "seconds"]
    rows = []
    for r in report.results:
        failed = [t.name for t in r.tests if not t.passed]
        verdict = r.error or ("passed" if r.tests_passed else "failed: " + ", ".join(failed))
        mark = " *" if r.candidate == report.best else ""
        rows.append((r.candidate + mark, r.kind, r.status, _number(r.primary), verdict, r.trials or "-", r.seconds))
    table(f"candidates of {report.usecase} on dataset v{report.dataset_version} "
          f"(threshold {report.primary_metric} {report.threshold:g}; * best)", columns, rows)
    if report.serving:
        console().print(report.serving)
    if report.registered:
        console().print(f"registered [bold]{report.registered.registered_name} "
                        f"v{report.registered.version}[/bold] ({report.best}); it awaits the owner's "
                        f"acceptance: `valueloop accept {report.usecase} {report.registered.version} -m ...`")
    else:
        console().print("[yellow]nothing registered:[/yellow] no candidate passed its tests")
    console().print(f"comparison plot: {report.comparison_plot}")


@served
def train(
    ctx: typer.Context,
    usecase: str,
    dataset_version: int = typer.Option(None, "--dataset-version", help="Default: the newest."),
    candidate: list[str] = typer.Option([], "--candidate", "-c",
                                        help="Train only these (repeatable); the baseline always trains."),
    as_json: bool = JsonOption,
) -> None:
    """Train the use case's candidates, compare them, register the best one that passes its tests."""
    from valueloop.learn.views import TrainingReport

    def local(who: str | None) -> TrainingReport:
        from rich.progress import Progress

        from valueloop import heap
        from valueloop.config import load_settings
        from valueloop.learn.training import train as train_
        from valueloop.store import session

        heap.one_shot()
        settings = load_settings()
        report_half_written(settings, who, usecase, "train")
        with Progress(console=console(), transient=True, disable=as_json) as progress, session(settings) as s:
            return train_(s, settings, who, usecase, dataset_version=dataset_version,
                          candidates=candidate or None, progress=progress)

    body = {"dataset_version": dataset_version, "candidates": candidate or None}
    report = answer(ctx, Route("POST", f"/api/usecases/{segment(usecase)}/runs", json=body), TrainingReport, local)
    show(report, as_json, lambda: _render_training(report))


@served
def reproduce(ctx: typer.Context, run: str, as_json: bool = JsonOption) -> None:
    """Retrain a run from its dataset version, params and seed; report whether the metrics match."""
    from valueloop.learn.views import ReproduceReport

    def local(who: str | None) -> ReproduceReport:
        from valueloop import heap
        from valueloop.config import load_settings
        from valueloop.learn.training import reproduce as reproduce_
        from valueloop.store import session

        heap.one_shot()
        settings = load_settings()
        with session(settings) as s:
            return reproduce_(s, settings, who, run)

    report = answer(ctx, Route("POST", f"/api/runs/{segment(run)}/reproduction"), ReproduceReport, local)

    def render() -> None:
        verdict = "[green]metrics match[/green]" if report.matches else "[red]metrics differ[/red]"
        console().print(f"run {report.original_run} reproduced as {report.new_run} on dataset "
                        f"v{report.dataset_version}: {verdict}")
        if report.differences:
            table("differences", ["metric", "original", "reproduced"],
                  [(k, _number(a), _number(b)) for k, (a, b) in report.differences.items()])

    show(report, as_json, render)
    if not report.matches:
        raise typer.Exit(1)


@served
def runs(ctx: typer.Context, usecase: str, as_json: bool = JsonOption) -> None:
    """Every training run of a use case: candidate, dataset version, status, metrics."""
    from valueloop.learn.training import list_runs

    found = call(ctx, Route("GET", f"/api/usecases/{segment(usecase)}/runs"), list_runs, usecase)
    show(found, as_json, lambda: table(
        f"training runs of {usecase}", ["run", "when", "candidate", "dataset", "status", "metrics", "by"],
        [(r.run_id, f"{r.created_at:%Y-%m-%d %H:%M}", r.candidate, f"v{r.dataset_version}", r.status,
          r.error or ", ".join(f"{k}={v:.3f}" for k, v in r.metrics.items() if v is not None), r.actor)
         for r in found]))


def _render_version(m: Any) -> None:
    console().print(f"[bold]{m.registered_name} v{m.version}[/bold] ({m.candidate}, run {m.run_id}) "
                    f"dataset v{m.dataset_version}, DPIA v{m.dpia_version}, digest {m.artifact_digest[:12]}…; "
                    f"acceptance [cyan]{m.acceptance}[/cyan]"
                    + (f" by {m.accepted_by}: {m.acceptance_comment}" if m.accepted_by else "")
                    + (f"; aliases {', '.join(m.aliases)}" if m.aliases else ""))
    if m.compiled is not None:
        console().print(f"compiled: {m.compiled.compiler}, digest {m.compiled.digest[:12]}…" if m.compiled.digest
                        else f"not compiled: {m.compiled.note}")
    table("evaluation next to the targets", ["KPI", "kind", "target", "model", "met"],
          [(k.name, k.kind, k.target, _number(k.value),
            "-" if k.met is None else ("yes" if k.met else "no")) for k in m.kpis])
    table("model tests", ["test", "passed", "detail"], [(t.name, "yes" if t.passed else "no", t.detail)
                                                       for t in m.tests])


@served
def models(ctx: typer.Context, usecase: str,
           version: str = typer.Argument(None, help="A version or alias: show its evaluation."),
           as_json: bool = JsonOption) -> None:
    """Registered model versions with tests, acceptance and aliases; one in detail when named."""
    from valueloop.learn.registry import get_model, list_models

    path = f"/api/usecases/{segment(usecase)}/models"
    if version:
        m = call(ctx, Route("GET", f"{path}/{segment(version)}"), get_model, usecase, version)
        show(m, as_json, lambda: _render_version(m))
        return
    found = call(ctx, Route("GET", path), list_models, usecase)
    show(found, as_json, lambda: table(
        f"model versions of {usecase}", ["version", "candidate", "dataset", "tests", "acceptance", "aliases", "created"],
        [(f"v{m.version}", m.candidate, f"v{m.dataset_version}", "passed" if m.tests_passed else "failed",
          m.acceptance + (f" by {m.accepted_by}" if m.accepted_by else ""), ", ".join(m.aliases),
          f"{m.created_at:%Y-%m-%d %H:%M}") for m in found]))


@served
def accept(
    ctx: typer.Context,
    usecase: str,
    version: int,
    reject: bool = typer.Option(False, "--reject", help="Reject instead of accept."),
    comment: str = typer.Option(..., "--comment", "-m", help="Why, in the owner's words."),
    as_json: bool = JsonOption,
) -> None:
    """The owner accepts (or rejects) a model version against the business targets."""
    from valueloop.learn.registry import accept as accept_

    body = {"accepted": not reject, "comment": comment}
    m = call(ctx, Route("POST", f"/api/usecases/{segment(usecase)}/models/{version}/acceptance", json=body),
             accept_, usecase, version, accepted=not reject, comment=comment)
    show(m, as_json, lambda: _render_version(m))


@served
def promote(
    ctx: typer.Context,
    usecase: str,
    version: int,
    alias: str = typer.Option("champion", "--alias", help="champion or challenger."),
    as_json: bool = JsonOption,
) -> None:
    """Set the champion or challenger alias (tests passed; champion also needs the owner's acceptance)."""
    from valueloop.learn.registry import promote as promote_
    from valueloop.learn.views import ModelVersionView

    def local(who: str | None) -> ModelVersionView:
        from valueloop.config import load_settings
        from valueloop.store import session

        settings = load_settings()
        report_half_written(settings, who, usecase, "promote")
        with session(settings) as s:
            return promote_(s, settings, who, usecase, version, alias)

    route = Route("POST", f"/api/usecases/{segment(usecase)}/models/{version}/promotion", json={"alias": alias})
    m = answer(ctx, route, ModelVersionView, local)
    show(m, as_json, lambda: console().print(
        f"{m.registered_name} v{m.version} is now {alias} (aliases: {', '.join(m.aliases)})"))


def register(app: typer.Typer) -> None:
    """Top-level commands, as the design's command line names them."""
    for command in (train, reproduce, runs, models, accept, promote):
        app.command(command.__name__)(command)

"""``valueloop privacy ...``: submit the DPIA, the privacy officer's decision, retention and erasure."""

from __future__ import annotations

import typer

from valueloop.cli._common import JsonOption, group, console, show, table
from valueloop.cli.remote import Route, answer, call, segment, served

app = group("The Data Privacy Impact Assessment and the privacy officer's decision.")


def parse_condition(text: str):  # type: ignore[no-untyped-def]
    """``COLUMN=TREATMENT[:KEY=VALUE,...]``, e.g. ``postcode=generalize:prefix=2``."""
    from valueloop.errors import InvalidInput
    from valueloop.outcomes.privacy import condition_of

    head, _, tail = text.partition(":")
    column, sep, treatment = head.partition("=")
    if not sep:
        raise InvalidInput(f"--condition: expected COLUMN=TREATMENT[:KEY=VALUE,...], got {text!r}")
    return condition_of(column, treatment, tail, f"--condition {text!r}")


def _render(a) -> None:  # type: ignore[no-untyped-def]
    console().print(f"DPIA [bold]{a.usecase} v{a.version}[/bold]: [cyan]{a.status}[/cyan]"
                  + (f" by {a.decided_by}" if a.decided_by else f" (submitted by {a.submitted_by})")
                  + (f": {a.comment}" if a.comment else ""))
    table("column treatments (proposal, then conditions)", ["column", "treatment", "params", "source"],
          [(t.column, t.treatment, t.params or "",
            "condition" if any(c.column == t.column for c in a.conditions) else "proposal")
           for t in a.treatments.values()])
    if (ai := a.content.ai) is not None:
        from rich.markup import escape

        told = [f"Annex III {ai.annex_iii}" if ai.annex_iii else "",
                f"oversight: {ai.oversight.who}: {ai.oversight.how}" if ai.oversight else "",
                f"logs kept {ai.log_retention}" if ai.log_retention else "",
                f"notice: {ai.transparency_notice}" if ai.transparency_notice else ""]
        console().print(escape("; ".join([f"AI Act risk class {ai.risk}", *filter(None, told)])))


@app.command("submit")
@served
def submit(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Submit the use case's privacy section for the privacy officer's decision."""
    from valueloop.outcomes.privacy import submit as submit_

    a = call(ctx, Route("POST", f"/api/usecases/{segment(name)}/privacy/submit"), submit_, name)
    show(a, as_json, lambda: _render(a))


@app.command("approve")
@served
def approve(
    ctx: typer.Context,
    name: str,
    condition: list[str] = typer.Option(
        [], "--condition", "-c",
        help="A treatment the Data phase must apply: COLUMN=TREATMENT[:KEY=VALUE,...], repeatable.",
    ),
    comment: str = typer.Option(None, "--comment", "-m"),
    as_json: bool = JsonOption,
) -> None:
    """Approve the pending DPIA, optionally with conditions (privacy officer only)."""
    from valueloop.outcomes.privacy import approve as approve_

    conditions = [parse_condition(c) for c in condition]
    body = {"conditions": [c.model_dump(mode="json") for c in conditions], "comment": comment}
    a = call(ctx, Route("POST", f"/api/usecases/{segment(name)}/privacy/approve", json=body),
             approve_, name, conditions, comment)
    show(a, as_json, lambda: _render(a))


@app.command("reject")
@served
def reject(
    ctx: typer.Context,
    name: str,
    reason: str = typer.Option(..., "--reason", "-m", help="Why, so the team can adjust."),
    as_json: bool = JsonOption,
) -> None:
    """Reject the pending DPIA with a reason; the use case goes back to the team."""
    from valueloop.outcomes.privacy import reject as reject_

    a = call(ctx, Route("POST", f"/api/usecases/{segment(name)}/privacy/reject", json={"reason": reason}),
             reject_, name, reason)
    show(a, as_json, lambda: _render(a))


@app.command("show")
@served
def show_(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Every DPIA version of a use case with its decision."""
    from valueloop.outcomes.privacy import history

    versions = call(ctx, Route("GET", f"/api/usecases/{segment(name)}/privacy"), history, name)

    def render() -> None:
        table(f"DPIA of {name}", ["version", "status", "submitted by", "decided by", "conditions", "comment"],
              [(f"v{a.version}", a.status, a.submitted_by, a.decided_by,
                ", ".join(f"{c.column}={c.treatment}" for c in a.conditions), a.comment) for a in versions])
        if versions:
            _render(versions[-1])

    show(versions, as_json, render)


@app.command("enforce-retention")
@served
def enforce_retention(
    ctx: typer.Context,
    name: str,
    models_too: bool = typer.Option(
        False, "--models-too",
        help="Also remove dataset versions a registered model was trained on (the privacy officer's decision).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Delete what is kept past the DPIA's retention: prediction-log days, labels and superseded dataset
    versions (privacy officer or operations; `valueloop server` does it hourly)."""
    from valueloop.config import load_settings
    from valueloop.operate.retention import RetentionReport, enforce

    report = answer(ctx, Route("POST", f"/api/usecases/{segment(name)}/privacy/retention",
                               json={"models_too": models_too}),
                    RetentionReport, lambda who: enforce(load_settings(), who, name, models_too=models_too))
    show(report, as_json, lambda: console().print(
        f"retention of {name} ({', '.join(f'{k} {v}' for k, v in report.retention.items() if v) or 'no personal column'}): "
        f"deleted {report.predictions_deleted} prediction(s) in {len(report.partitions_deleted)} day(s), "
        f"{report.labels_deleted} label(s), {report.dataset_files_deleted} dataset file(s)"
        + (f"; versions removed: {', '.join(map(str, report.dataset_versions_removed))}"
           if report.dataset_versions_removed else "")
        + (f"; kept for models: {', '.join(map(str, report.dataset_versions_kept_for_models))}"
           if report.dataset_versions_kept_for_models else "")))


@app.command("erase")
@served
def erase(
    ctx: typer.Context,
    name: str,
    subject: str = typer.Option(..., "--subject", help="COLUMN=VALUE as the source holds it, e.g. email=jane@example.com."),
    redis_url: list[str] = typer.Option([], "--redis-url", help="A Redis a consumer was given with "
                                        "--redis-url, with its password (repeatable): its streams are searched too."),
    as_json: bool = JsonOption,
) -> None:
    """Erase a data subject's rows from every kept dataset version, the prediction log, the labels and
    the use case's Redis streams (privacy officer only); recorded without the value, re-applied by
    every later restore."""
    from valueloop.config import load_settings
    from valueloop.operate.erasure import ErasureReport, erase as erase_, subject_of

    column, value = subject_of(subject)
    report = answer(ctx, Route("POST", f"/api/usecases/{segment(name)}/privacy/erase",
                               json={"column": column, "value": value, "redis_urls": redis_url}),
                    ErasureReport, lambda who: erase_(load_settings(), who, name, column, value, redis_url))

    def render() -> None:
        e = report.erasure
        console().print(
            f"erasure {e.id} of {name} by {column}: {report.dataset_rows} dataset row(s)"
            + (f" (new version {report.dataset_version})" if report.dataset_version is not None else "")
            + f", {report.dataset_files_deleted} file(s) deleted, {report.predictions} prediction(s), "
            f"{report.labels} label(s), {report.stream_entries} stream entry(ies)")
        if report.dataset_versions_removed:
            console().print(f"dataset versions no longer readable: {', '.join(map(str, report.dataset_versions_removed))}")
        if report.not_held:
            console().print(f"no {column} column in: {', '.join(report.not_held)}")
        if e.models_to_retrain:
            console().print(f"[yellow]models to retrain at the next cycle: {', '.join(map(str, e.models_to_retrain))}[/yellow]")

    show(report, as_json, render)


@app.command("erasures")
@served
def erasures(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """The use case's recorded erasures (no personal value) and the models awaiting retraining."""
    from valueloop.config import load_settings
    from valueloop.operate.erasure import ErasureView, erasures as erasures_

    found = answer(ctx, Route("GET", f"/api/usecases/{segment(name)}/privacy/erasures"), list[ErasureView],
                   lambda who: erasures_(load_settings(), who, name))
    show(found, as_json, lambda: table(
        f"erasures of {name}", ["id", "at", "by", "column", "key id", "models awaiting retraining"],
        [(e.id, f"{e.at:%Y-%m-%d %H:%M}", e.by, e.column, e.key_id, ", ".join(map(str, e.awaiting_retraining)))
         for e in found]))

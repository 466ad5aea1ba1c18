"""``valueloop privacy ...``: submit the DPIA, and the privacy officer's decision."""

from __future__ import annotations

import typer

from valueloop.cli._common import JsonOption, group, console, show, table
from valueloop.cli.remote import Route, call, segment, served

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

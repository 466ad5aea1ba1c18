"""``valueloop init`` and ``valueloop usecase ...``: formulation, lifecycle, members, outcomes."""

from __future__ import annotations

from pathlib import Path

import typer

from valueloop.cli._common import JsonOption, group, console, parse_pairs, show, table
from valueloop.cli.remote import Route, call, segment, served

usecase_app = group("Formulate use cases and move them through their lifecycle.")


@served
def init(
    directory: Path = typer.Argument(Path("."), help="Where to write the example project."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
    task: str = typer.Option(None, "--task", help="regression, multiclass or binary: write a minimal "
                             "valueloop.yaml for this task instead of the full churn example."),
) -> None:
    """Write a complete, commented example project: valueloop.yaml, its SQL transform and a
    generator for its data (`python generate.py` writes data/customers.csv); or, with --task, a
    minimal valueloop.yaml for that task, every field commented."""
    from valueloop.errors import Conflict, InvalidInput
    from valueloop.examples import TASKS, example_dir, template

    if task is not None and task not in TASKS:
        raise InvalidInput(f"--task: {task!r} is not a task; choose one of {', '.join(sorted(TASKS))}")
    files = {p.name: p.read_text() for p in sorted(example_dir("churn").iterdir())
             if p.is_file() and p.suffix in (".yaml", ".sql", ".py")} if task is None else \
        {"valueloop.yaml": template(task)}
    existing = [str(directory / name) for name in files if (directory / name).exists()]
    if existing and not force:
        raise Conflict(f"{', '.join(existing)} already exist(s); pass --force to overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    target = directory / "valueloop.yaml"
    console().print(f"wrote {', '.join(files)} to {directory}: edit {target}, then "
                    f"`valueloop usecase create {target}`")


def _render_detail(d) -> None:  # type: ignore[no-untyped-def]
    console().print(f"[bold]{d.name}[/bold]: {d.title}   state [cyan]{d.state}[/cyan]"
                  + (f" ({d.state_reason})" if d.state_reason else "")
                  + f"   cycle {d.cycle or '-'}   DPIA {d.privacy}")
    console().print(f"goal: {d.business_goal}")
    console().print(f"next states: {', '.join(d.next_states) or 'none'}")
    table("KPI targets", ["name", "kind", "target"], [(k.name, k.kind, str(k)) for k in d.kpis])
    table("members", ["user", "role"], [(m.user, m.role) for m in d.members])
    if d.cycles:
        table("cycles", ["#", "started", "KPI outcomes", "decision", "by"],
              [(c.number, f"{c.started_at:%Y-%m-%d %H:%M}",
                ", ".join(f"{k}={o.value:g} ({'met' if o.met else 'missed'})" for k, o in c.kpi_outcomes.items()),
                (c.decision or "") + (f": {c.decision_comment}" if c.decision_comment else ""),
                c.decided_by) for c in d.cycles])


def _apply_file(ctx: typer.Context, file: Path, as_json: bool, *, create: bool) -> None:
    from valueloop.outcomes.spec import load_spec
    from valueloop.outcomes.usecases import create_usecase, update_usecase

    spec = load_spec(file)  # read here, refused here: the server gets the spec, never the file
    body = spec.model_dump(mode="json", by_alias=True)
    route = (Route("POST", "/api/usecases", json=body) if create
             else Route("PUT", f"/api/usecases/{segment(spec.name)}", json=body))
    d = call(ctx, route, create_usecase if create else update_usecase, spec)
    show(d, as_json, lambda: _render_detail(d))


@usecase_app.command("create")
@served
def create(ctx: typer.Context, file: Path, as_json: bool = JsonOption) -> None:
    """Create a use case from its valueloop.yaml (the acting user must be its owner or analyst)."""
    _apply_file(ctx, file, as_json, create=True)


@usecase_app.command("update")
@served
def update(ctx: typer.Context, file: Path, as_json: bool = JsonOption) -> None:
    """Replace a use case's file; a changed privacy section needs a new DPIA decision."""
    _apply_file(ctx, file, as_json, create=False)


@usecase_app.command("list")
@served
def list_(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """The use cases you may see, with their state, cycle and DPIA status."""
    from valueloop.outcomes.usecases import list_usecases

    rows = call(ctx, Route("GET", "/api/usecases"), list_usecases)
    show(rows, as_json, lambda: table(
        "use cases", ["name", "title", "state", "cycle", "owner", "DPIA"],
        [(u.name, u.title, u.state, u.cycle or "-", u.owner, u.privacy) for u in rows]))


@usecase_app.command("show")
@served
def show_(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """One use case: targets, members, cycles with their outcomes and decisions."""
    from valueloop.outcomes.usecases import show_usecase

    d = call(ctx, Route("GET", f"/api/usecases/{segment(name)}"), show_usecase, name)
    show(d, as_json, lambda: _render_detail(d))


@usecase_app.command("value")
@served
def value(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Per cycle: the intended value (every KPI at its target), the value realized from the
    recorded KPIs, and the expected cost, as the use case file's value: section states them."""
    from valueloop.outcomes.usecases import show_value

    v = call(ctx, Route("GET", f"/api/usecases/{segment(name)}/value"), show_value, name)
    show(v, as_json, lambda: (
        console().print(f"[bold]{name}[/bold] value = {v.expression}"
                        + (f"   with {', '.join(f'{k}={c:g}' for k, c in v.constants.items())}" if v.constants else "")),
        table(f"value per cycle ({v.currency})", ["cycle", "intended", "realized", "cost", "net"],
              [(c.cycle, f"{c.intended:,.2f}",
                f"{c.realized:,.2f}" if c.realized is not None else (c.problem or f"missing {', '.join(c.missing)}"),
                f"{c.cost:,.2f}", f"{c.net:,.2f}" if c.net is not None else "-") for c in v.cycles])))


@usecase_app.command("advance")
@served
def advance(
    ctx: typer.Context,
    name: str,
    state: str = typer.Argument(..., help="The next state."),
    reason: str = typer.Option(None, "--reason", "-m", help="Why; required for the decision at review."),
    as_json: bool = JsonOption,
) -> None:
    """Move a use case to its next lifecycle state."""
    from valueloop.errors import InvalidInput
    from valueloop.outcomes.lifecycle import State
    from valueloop.outcomes.usecases import advance as advance_

    if state not in State.__members__:
        raise InvalidInput(f"state: unknown state {state!r}; states are {', '.join(State)}")
    d = call(ctx, Route("POST", f"/api/usecases/{segment(name)}/advance", json={"state": state, "reason": reason}),
             advance_, name, State(state), reason)
    reviewed = _reviewed(d)
    show(d, as_json, lambda: (
        console().print(f"{name} is now [cyan]{d.state}[/cyan] (cycle {d.cycle or '-'})"),
        reviewed and console().print(reviewed.line())))


def _reviewed(d):  # type: ignore[no-untyped-def]
    """The value of the cycle a move into or out of review judged: the cycle now in review, or the
    one just decided (before the new cycle, or the last one when retired)."""
    judged = {"in_review": d.cycles[-1:], "in_development": d.cycles[-2:-1],
              "retired": [c for c in d.cycles[-1:] if c.decision]}.get(d.state, [])
    return judged[0].value if judged else None


@usecase_app.command("outcomes")
@served
def outcomes(
    ctx: typer.Context,
    name: str,
    kpi: list[str] = typer.Option(..., "--kpi", help="NAME=VALUE, repeatable."),
    as_json: bool = JsonOption,
) -> None:
    """Record measured KPI values on the current cycle, judged against the targets."""
    from valueloop.errors import InvalidInput
    from valueloop.outcomes.usecases import record_outcomes

    values = {}
    for key, raw in parse_pairs(kpi, "--kpi").items():
        try:
            values[key] = float(raw)
        except ValueError:
            raise InvalidInput(f"--kpi {key}: expected a number, got {raw!r}") from None
    d = call(ctx, Route("POST", f"/api/usecases/{segment(name)}/outcomes", json={"kpis": values}),
             record_outcomes, name, values)
    show(d, as_json, lambda: _render_detail(d))


@usecase_app.command("members")
@served
def members(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Who holds which role on a use case."""
    from valueloop.outcomes.usecases import list_members

    rows = call(ctx, Route("GET", f"/api/usecases/{segment(name)}/members"), list_members, name)
    show(rows, as_json, lambda: table(f"members of {name}", ["user", "role"], [(m.user, m.role) for m in rows]))


def _membership(ctx: typer.Context, name: str, user: str, role: str, add: bool) -> None:
    from valueloop.errors import InvalidInput
    from valueloop.outcomes.roles import Role
    from valueloop.outcomes.usecases import add_member, remove_member

    if role not in Role.__members__:
        raise InvalidInput(f"role: unknown role {role!r}; roles are {', '.join(Role)}")
    members = f"/api/usecases/{segment(name)}/members"
    route = (Route("POST", members, json={"user": user, "role": role}) if add
             else Route("DELETE", f"{members}/{segment(user)}/{segment(role)}"))
    rows = call(ctx, route, add_member if add else remove_member, name, user, Role(role))
    table(f"members of {name}", ["user", "role"], [(m.user, m.role) for m in rows])


@usecase_app.command("add-member")
@served
def add_member(ctx: typer.Context, name: str, user: str, role: str) -> None:
    """Give USER the ROLE on a use case (the owner or an admin may)."""
    _membership(ctx, name, user, role, add=True)


@usecase_app.command("remove-member")
@served
def remove_member(ctx: typer.Context, name: str, user: str, role: str) -> None:
    """Take the ROLE on a use case away from USER."""
    _membership(ctx, name, user, role, add=False)

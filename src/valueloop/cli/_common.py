"""What every command shares: the acting user, output as a rich table or JSON, argument parsers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from valueloop.errors import AuthenticationFailed, InvalidInput

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

    from valueloop.config import Settings

    _Options = TypeVar("_Options", bound=BaseModel)

JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def actor(ctx: typer.Context) -> str | None:
    """The acting user of ``--as`` or ``VALUELOOP_USER``; never an automated principal."""
    from valueloop.outcomes.users import SYSTEM_PREFIX

    name = (ctx.find_root().obj or {}).get("actor")
    if name and name.startswith(SYSTEM_PREFIX):
        raise AuthenticationFailed(f"{name} is an automated principal: it acts only under its own "
                                   "standing authorization, never from the command line")
    return name


def parse_options(kind: type[_Options], /, **values: Any) -> _Options:
    """A command's options as the service's pydantic model; a broken rule is named by its flag
    (``--batch-size: Input should be greater than or equal to 1, got 0``)."""
    from pydantic import ValidationError

    from valueloop.validation import describe_errors

    try:
        return kind(**values)
    except ValidationError as exc:
        flagged = (line.partition(": ") for line in describe_errors(exc))
        problems = [f"--{field.replace('_', '-')}{sep}{rule}" for field, sep, rule in flagged]
        raise InvalidInput("invalid option(s):", problems=problems) from None


def group(help: str) -> typer.Typer:
    """A command group; plain click help, because rich's help rendering costs 0.4 s of imports."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


@cache
def console() -> Console:
    """The shared rich console, imported on first output so ``--help`` stays fast."""
    from rich.console import Console

    return Console()


def to_jsonable(data: Any) -> Any:
    if hasattr(data, "model_dump"):  # a pydantic model
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [to_jsonable(d) for d in data]
    if isinstance(data, dict):
        return {k: to_jsonable(v) for k, v in data.items()}
    return data


def print_json(data: Any) -> None:
    typer.echo(json.dumps(to_jsonable(data), indent=2, default=str))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console().print(t)


def show(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print ``data`` as JSON when asked, else call ``render`` for the human view."""
    if as_json:
        print_json(data)
    else:
        render()


def parse_pairs(items: Sequence[str], field: str) -> dict[str, str]:
    """``KEY=VALUE`` items into a dict, refusing anything else by name."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{field}: expected KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def reconcile_aliases(settings: Settings) -> None:
    """At a server's start: MLflow's aliases made those of valueloop's database, each change said."""
    from valueloop.learn.aliases import reconcile_or_warn

    for change in reconcile_or_warn(settings):
        now = "none" if change.version is None else f"v{change.version}"
        console().print(f"MLflow alias {change.alias} of {change.usecase}: {now} (was "
                        f"{'none' if change.was is None else f'v{change.was}'}), as valueloop's database holds it")


def report_half_written(settings: Settings, actor: str | None, usecase: str, step: str) -> None:
    """Before ingest, train or promote: what the doctor finds half-written among the objects the
    step touches, said on stderr for who may read the use case (repaired only by ``doctor --repair``)."""
    from valueloop.errors import ValueloopError
    from valueloop.outcomes.usecases import viewed
    from valueloop.recovery.doctor import before
    from valueloop.store import session

    try:
        with session(settings) as s:
            viewed(s, actor, usecase)
            found = before(s, settings, usecase, step).findings
    except ValueloopError:
        return  # the step itself refuses, with its own message
    for f in found:
        typer.secho(f"doctor: {f.kind} {f.target}: {f.detail}; not used by this {step}", fg="yellow", err=True)
    if found:
        typer.secho(f"doctor: `valueloop doctor --usecase {usecase} --repair` mends {len(found)} thing(s) "
                    "(operations or the admin)", fg="yellow", err=True)

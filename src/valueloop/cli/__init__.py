"""The ``valueloop`` command. Each group lives in its own module and imports services lazily,
so ``valueloop --help`` stays fast; errors are mapped to exit codes here, once."""

from __future__ import annotations

import os
import sys

import typer

from valueloop.cli import admin, audit, demo, outcomes, privacy, server
from valueloop.cli import data
from valueloop.cli import learn
from valueloop.cli import operate
from valueloop.cli import batch
from valueloop.cli import stream
from valueloop.cli import serve

app = typer.Typer(
    name="valueloop",
    help="One closed MLOps loop: Outcomes → Data → Learn → Deploy → Operate → back to Outcomes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: rich help rendering costs 0.4 s of imports
)


@app.callback()
def _root(
    ctx: typer.Context,
    as_user: str = typer.Option(
        None, "--as", help="Acting user (default: $VALUELOOP_USER).", show_default=False
    ),
) -> None:
    ctx.obj = {"actor": as_user or os.environ.get("VALUELOOP_USER")}


app.add_typer(outcomes.usecase_app, name="usecase")
app.add_typer(privacy.app, name="privacy")
app.add_typer(data.app, name="data")
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.tokens_app, name="tokens")
app.command("init")(outcomes.init)
app.command("config")(admin.config)
app.command("audit")(audit.audit)
app.command("server")(server.server)
app.command("demo")(demo.demo)
learn.register(app)
operate.register(app)
app.command("batch")(batch.batch)
app.command("stream")(stream.stream)
serve.register(app)


def main() -> None:
    from valueloop.errors import ValueloopError

    try:
        app(standalone_mode=False)
    except ValueloopError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", fg="red", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise

"""The ``valueloop`` command. Each group lives in its own module and imports services lazily,
so ``valueloop --help`` stays fast; errors are mapped to exit codes here, once."""

from __future__ import annotations

import os
import sys

import typer

from valueloop.cli import (
    admin, audit, backup, batch, data, db, demo, doctor, labels, learn, modelcard, operate, outcomes, privacy, remote,
    serve, server, stream,
)

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


# In loop order, so `valueloop --help` reads like the loop.
app.command("init")(outcomes.init)
app.command("demo")(demo.demo)
app.command("config")(admin.config)
app.command("login")(admin.login)
app.command("logout")(admin.logout)
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.tokens_app, name="tokens")
app.add_typer(outcomes.usecase_app, name="usecase")
app.add_typer(privacy.app, name="privacy")
app.add_typer(audit.app, name="audit")
app.add_typer(db.app, name="db")
app.command("doctor")(doctor.doctor)
app.command("backup")(backup.backup)
app.command("restore")(backup.restore)
app.add_typer(data.app, name="data")
learn.register(app)
app.command("modelcard")(modelcard.modelcard)
serve.register(app)
app.command("batch")(batch.batch)
app.command("stream")(stream.stream)
operate.register(app)
app.add_typer(labels.app, name="labels")
app.command("server")(server.server)


def _hoist_acting_user(argv: list[str]) -> list[str]:
    """``--as USER`` belongs to the root command but reads naturally anywhere in the line."""
    rest, hoisted, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg == "--as" and i + 1 < len(argv):
            hoisted, i = ["--as", argv[i + 1]], i + 2
            continue
        if arg.startswith("--as="):
            hoisted = [arg]
        else:
            rest.append(arg)
        i += 1
    return hoisted + rest


def main() -> None:
    from valueloop import heap
    from valueloop.errors import ValueloopError

    args = _hoist_acting_user(sys.argv[1:])
    try:
        command = typer.main.get_command(app)
        remote.refuse_local(command, args)  # type: ignore[arg-type]
        # click hands back a command's typer.Exit code instead of exiting, outside standalone mode
        code = command.main(args=args, prog_name="valueloop", standalone_mode=False)
    except ValueloopError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", fg="red", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: click's own message and exit code
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    heap.leave(code if isinstance(code, int) else 0)

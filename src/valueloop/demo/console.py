"""Demo chapter: the people of the loop get console passwords, and where to sign in is printed."""

from __future__ import annotations

from valueloop.demo import DemoContext

#: where ``valueloop demo --serve`` (and the printed command) serves the console
CONSOLE_PORT = 8700


def password_of(name: str) -> str:
    """The demo's password for a person: printed, and only ever used on synthetic data."""
    return f"{name}-demo-pass"


def run(ctx: DemoContext) -> None:
    from valueloop.demo.outcomes import PEOPLE
    from valueloop.outcomes import users
    from valueloop.store import session

    ctx.chapter("Console · every role in a browser")
    out = ctx.console
    with session(ctx.settings) as s:
        for name in PEOPLE:
            users.set_password(s, "admin", name, password_of(name))
    out.print(f"console: http://127.0.0.1:{CONSOLE_PORT}/ (API docs at /docs) — keep it running with "
              f"`valueloop demo --serve`, or `VALUELOOP_HOME={ctx.workspace} valueloop server`")
    out.print("sign in as (user / password):")
    for name, role in PEOPLE.items():
        out.print(f"  {name} / {password_of(name)}  ({role})")

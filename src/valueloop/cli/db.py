"""``valueloop db migrate``: the schema migrated by its owner, apart from the server's own role."""

from __future__ import annotations

from valueloop.cli._common import JsonOption, console, group, show

app = group("The metadata database.")


@app.command("migrate")
def migrate(as_json: bool = JsonOption) -> None:
    """Bring the metadata schema to its newest revisions as migration_database_url (the schema's
    owner) and grant database_url's role its rows, without ALTER or TRUNCATE on the audit. Run it
    on each upgrade; the server then needs only database_url."""
    from valueloop.config import load_settings
    from valueloop.store.db import get_engine, schema_revisions

    settings = load_settings()
    engine = get_engine(settings.database_url, settings.migration_database_url)
    report = {"revisions": schema_revisions(engine),
              "migrated_as": settings.migration_database_url and _role(settings.migration_database_url),
              "server_role": _role(settings.database_url)}
    show(report, as_json, lambda: console().print(
        f"metadata schema at {', '.join(report['revisions'])}"
        + (f", migrated as {report['migrated_as']}; {report['server_role']} may not alter the audit"
           if report["migrated_as"] else "")))


def _role(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).username or "(default)"

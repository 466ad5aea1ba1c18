"""The Data phase's services: ingest a dataset version, check without writing, read versions back.

An ingest passes the DPIA gate, streams and treats the sources, stages the transform's result,
checks and profiles it, and only then commits a Delta version, its row and its audit event.
Anything that fails before the commit leaves no version and no file behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import DEVELOPMENT_KEY, Settings, is_demo, key_id
from valueloop.data import delta, pipeline, profile, quality, sandbox
from valueloop.data.plain import scan
from valueloop.data.profile import Profiler
from valueloop.data.tables import DatasetVersion
from valueloop.data.treatments import key_ids
from valueloop.errors import Conflict, InvalidInput, NotFound, NotInProject
from valueloop.outcomes import audit
from valueloop.outcomes.privacy import AssessmentView, require_privacy_approval
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import Check, DataSection, Treatment
from valueloop.outcomes.usecases import get_usecase, spec_of, viewed
from valueloop.outcomes.users import get_user
from valueloop.store import intents
from valueloop.store.models import UseCase

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

#: progress callback: the current step, and the rows read so far
Progress = Callable[[str, int], None]
MODES = ("append", "overwrite")


class ColumnView(BaseModel):
    name: str
    type: str


class DatasetVersionView(BaseModel):
    usecase: str
    version: int
    uri: str
    mode: str
    row_count: int
    columns: list[ColumnView]
    source_fingerprints: dict[str, Any]
    transform_hash: str
    dpia_version: int
    treatments: dict[str, Any]
    serving: dict[str, Any] | None = None
    quality: dict[str, Any]
    profile: dict[str, Any]
    removed: dict[str, Any] | None = None
    project_dir: str
    actor: str
    created_at: datetime


def _view(row: DatasetVersion) -> DatasetVersionView:
    return DatasetVersionView(
        usecase=row.usecase.name, version=row.version, uri=row.uri, mode=row.mode,
        row_count=row.row_count, columns=row.schema, source_fingerprints=row.source_fingerprints,
        transform_hash=row.transform_hash, dpia_version=row.dpia_version, treatments=row.treatments,
        serving=row.serving, quality=row.quality, profile=row.profile, removed=row.removed,
        project_dir=row.project_dir, actor=row.actor,
        created_at=row.created_at,
    )


def _rows(session: Session, usecase: UseCase) -> list[DatasetVersion]:
    return list(session.scalars(
        select(DatasetVersion).where(DatasetVersion.usecase_id == usecase.id).order_by(DatasetVersion.version)
    ))


@dataclass(frozen=True)
class _Project:
    """The directory the use case file's relative paths start from, and, when no --project named
    it, where it came from: a file not found there may be in the folder --project should name."""

    path: Path
    chosen: str | None = None

    @contextmanager
    def finding(self) -> Iterator[None]:
        try:
            yield
        except NotInProject as exc:
            if self.chosen is None:
                raise
            raise NotInProject(f"{exc.message}; no --project was given, so the project folder is "
                               f"{self.chosen}: pass --project DIR") from None


def _project_dir(session: Session, usecase: UseCase, given: str | Path | None) -> _Project:
    """--project, else the last ingest's folder, else the current directory."""
    chosen = None
    if given is None:
        previous = _rows(session, usecase)
        given = previous[-1].project_dir if previous else Path.cwd()
        chosen = "the folder of the last ingest" if previous else "the current directory"
    path = Path(given).expanduser().resolve()
    if not path.is_dir():
        raise InvalidInput(f"project: {given} is not a directory")
    return _Project(path, chosen)


class _Counter:
    """Turns per-batch row counts into progress calls."""

    def __init__(self, progress: Progress | None) -> None:
        self.rows, self.progress = 0, progress

    def step(self, name: str) -> None:
        if self.progress is not None:
            self.progress(name, self.rows)

    def add(self, rows: int) -> None:
        self.rows += rows
        self.step("reading, treating and transforming")


def _prepare(session: Session, settings: Settings, actor: str | None, usecase_name: str,
             project_dir: str | Path | None) -> tuple[UseCase, str, AssessmentView, _Project]:
    """Who may, whether the gate is open, and where the files are: all before any data is read."""
    usecase = get_usecase(session, usecase_name)
    acting = get_user(session, actor)
    require(session, acting, Action.ingest, usecase)
    assessment = require_privacy_approval(session, usecase)
    return usecase, acting.name, assessment, _project_dir(session, usecase, project_dir)


def _usable_key(settings: Settings) -> None:
    """The development key is published, so its pseudonyms are reversed by hashing a list of
    likely values: only the demo's synthetic data, or an explicit setting, may use it."""
    if settings.pseudonym_key == DEVELOPMENT_KEY and not settings.allow_development_key and not is_demo(settings.home):
        raise InvalidInput(
            "pseudonym_key: is the development key, which is published: anyone who guesses a value "
            "can find its pseudonym. Set a secret key of your own (VALUELOOP_PSEUDONYM_KEY, or "
            "pseudonym_key in the config file), or set allow_development_key (VALUELOOP_ALLOW_DEVELOPMENT_KEY) "
            "to true for data that needs no protection"
        )


def _keeps_key(settings: Settings, previous: DatasetVersion) -> None:
    """An append keeps the current version's key: rows under two keys would no longer join."""
    current, used = key_id(settings.pseudonym_key), key_ids(previous.treatments)
    if used - {current}:
        raise InvalidInput(
            f"mode: append would mix pseudonyms of two keys: version {previous.version} was "
            f"pseudonymized under key {', '.join(sorted(used))}, the key now is {current}; after a key "
            "rotation, ingest with --mode overwrite, which pseudonymizes every row under the new key"
        )


def _checked_and_profiled(checks: list[Check]) -> Callable[[dict[str, str]], list[str]]:
    """The aggregates of the checks and the profile, given the columns' types; none if a check
    names a column not among them (the checks say so once the rows are staged, as before)."""
    def aggregates(types: dict[str, str]) -> list[str]:
        try:
            return quality.aggregates(checks, types) + profile.aggregates(types)
        except InvalidInput:
            return []
    return aggregates


def _aggregated(con: duckdb.DuckDBPyConnection, staged: pipeline.Staged, files: list[Path],
                checker: quality.Checker, profiler: Profiler) -> list[list[Any]]:
    """The checks' and the profile's aggregates over the version: from the tally taken while
    the staged file was written if the version is that file alone, else by a scan of it."""
    wanted = checker.aggregates + profiler.aggregates
    found = staged.tally.of(checker.types, wanted) if staged.tally and files == staged.files else None
    if found is None:
        return scan(con, "dataset", checker.aggregates, profiler.aggregates)
    return [found[:len(checker.aggregates)], found[len(checker.aggregates):]]


def _stage(con: duckdb.DuckDBPyConnection, session: Session, settings: Settings, usecase: UseCase,
           assessment: AssessmentView, project: _Project, work: Path, counter: _Counter,
           mode: str | None, tally: bool = False) -> tuple[pipeline.Staged, DataSection, str, list[Path]]:
    """Stage the new rows, then show the checks and the profile the version they would make:
    in append mode the current version's rows and the new ones together (its files returned)."""
    from valueloop.operate.erasure import erased  # the ledger of erasures, which operate keeps

    spec = spec_of(usecase)
    section = spec.data or DataSection()
    mode = mode or section.mode
    if mode not in MODES:
        raise InvalidInput(f"mode: must be append or overwrite, got {mode!r}")
    previous = _rows(session, usecase)  # an append builds on the last recorded version, never past it
    kept_too = mode == "append" and bool(previous)  # the version holds the last one's rows too: no tally
    if any(t.treatment is Treatment.pseudonymize for t in assessment.treatments.values()):
        _usable_key(settings)
        if mode == "append" and previous:
            _keeps_key(settings, previous[-1])
    counter.step("reading, treating and transforming")
    with project.finding():
        staged = pipeline.stage(
            settings, list(spec.sources), section, project.path, assessment.treatments,
            [c.column for c in assessment.content.columns], work, counter.add, erased(settings, usecase.name),
            _checked_and_profiled(list(section.checks)) if tally and not kept_too else None,
        )
    table = delta.table_path(settings, usecase.name)
    delta.check_schema(table, staged.schema)
    kept = delta.files_at(table, previous[-1].version) if mode == "append" and previous else []
    files = delta.local_files(kept, work) + staged.files
    pipeline.register_dataset(con, files)
    return staged, section, mode, files


@contextmanager
def _user_sql(work: Path, files: list[Path]) -> Iterator[duckdb.DuckDBPyConnection]:
    """The sandbox the checks' own SQL runs in, holding the dataset the version would."""
    with sandbox.sandbox(work, files) as user:
        pipeline.register_dataset(user, files)
        yield user


def check(session: Session, settings: Settings, actor: str | None, usecase_name: str, *,
          project_dir: str | Path | None = None, mode: str | None = None,
          progress: Progress | None = None) -> dict[str, Any]:
    """Run the whole ingest but the commit: the quality report of the version it would make."""
    usecase, _, assessment, project = _prepare(session, settings, actor, usecase_name, project_dir)
    with delta.staging(settings) as work, sandbox.connect(work) as con:
        counter = _Counter(progress)
        _, section, _, files = _stage(con, session, settings, usecase, assessment, project, work, counter, mode)
        counter.step("checking quality")
        with _user_sql(work, files) as user:
            return quality.run(con, user, list(section.checks))


def ingest(session: Session, settings: Settings, actor: str | None, usecase_name: str, *,
           project_dir: str | Path | None = None, mode: str | None = None,
           progress: Progress | None = None) -> DatasetVersionView:
    """Commit a new dataset version, or refuse with the reason and leave everything as it was."""
    usecase, acting, assessment, project = _prepare(session, settings, actor, usecase_name, project_dir)
    counter = _Counter(progress)
    table = delta.table_path(settings, usecase.name)
    with delta.staging(settings) as work, sandbox.connect(work) as con:
        staged, section, mode, files = _stage(con, session, settings, usecase, assessment, project, work,
                                              counter, mode, tally=True)
        counter.step("checking quality and profiling")
        with _user_sql(work, files) as user:
            checker, profiler = quality.Checker(con, user, list(section.checks)), Profiler(con)
            checked, profiled = _aggregated(con, staged, files, checker, profiler)
            report = checker.report(checked)
        if not report["passed"]:
            raise InvalidInput(
                f"ingest of '{usecase.name}' refused: {report['errors']} error-level check(s) failed "
                f"on {report['rows']} rows; no version was written",
                problems=quality.failures(report),
            )
        profile = profiler.finish(profiled)
        counter.step("committing")
        recorded = [r.version for r in _rows(session, usecase)]
        with intents.writing(settings, intents.DELTA_COMMIT, usecase.name, str(table), acting,
                             after=max(recorded, default=None)) as intent:
            version = delta.commit(table, staged.files, staged.schema, mode, recorded)
            intents.crash_point("after-delta-commit")
    row = DatasetVersion(
        usecase_id=usecase.id, version=version, uri=str(table), mode=mode, row_count=report["rows"],
        schema=[{"name": f.name, "type": str(f.type)} for f in staged.schema],
        source_fingerprints=staged.fingerprints, transform_hash=staged.transform_hash,
        dpia_version=assessment.version, treatments=staged.treatments, serving=staged.serving, quality=report,
        profile=profile, project_dir=str(project.path), actor=acting,
    )
    session.add(row)
    intents.finish(session, intent, version=version)
    session.flush()
    audit.record(session, acting, "data.ingest", "dataset_version", f"{usecase.name}@{version}",
                 usecase=usecase.name,
                 after={"version": version, "mode": mode, "rows": report["rows"], "added": staged.rows,
                        "dpia_version": assessment.version, "transform_hash": staged.transform_hash,
                        "sources": {n: f["digest"] for n, f in staged.fingerprints.items()},
                        "warnings": report["warnings"]})
    return _view(row)


def list_versions(session: Session, usecase_name: str) -> list[DatasetVersionView]:
    return [_view(r) for r in _rows(session, get_usecase(session, usecase_name))]


def _row(session: Session, usecase_name: str, version: int | None) -> DatasetVersion:
    usecase = get_usecase(session, usecase_name)
    rows = _rows(session, usecase)
    if not rows:
        raise NotFound(f"use case '{usecase_name}' has no dataset version yet: "
                       f"`valueloop data ingest {usecase_name}` makes the first")
    if version is None:
        return rows[-1]
    for row in rows:
        if row.version == version:
            return row
    raise NotFound(f"use case '{usecase_name}' has no dataset version {version}; "
                   f"versions: {', '.join(str(r.version) for r in rows)}")


def get_version(session: Session, usecase_name: str, version: int | None = None) -> DatasetVersionView:
    """A version's record (the newest when ``version`` is None)."""
    return _view(_row(session, usecase_name, version))


def read_version(session: Session, usecase_name: str, version: int | None = None) -> pa.Table:
    """A version's rows exactly as committed (Delta time travel), whatever came after."""
    row = _row(session, usecase_name, version)
    if row.removed:
        raise Conflict(f"dataset version {row.version} of '{usecase_name}' can no longer be read: its files were "
                       f"removed by {row.removed['reason']} on {row.removed['at'][:10]} ({row.removed['detail']}); "
                       "its record keeps the lineage")
    return delta.read(row.uri, row.version)


def viewable(session: Session, actor: str | None, usecase_name: str) -> None:
    """Reading datasets needs a role in the use case, like every view."""
    viewed(session, actor, usecase_name)


class DatasetSample(BaseModel):
    """A version's record and its first rows, as ``valueloop data show`` prints them."""

    version: DatasetVersionView
    rows: list[dict[str, Any]]


def visible_versions(session: Session, actor: str | None, usecase_name: str) -> list[DatasetVersionView]:
    """Every version of a use case, oldest first, for a member of it."""
    viewable(session, actor, usecase_name)
    return list_versions(session, usecase_name)


def visible_version(session: Session, actor: str | None, usecase_name: str,
                    version: int | None = None) -> DatasetVersionView:
    """A version's record (the newest when ``version`` is None), for a member of the use case."""
    viewable(session, actor, usecase_name)
    return get_version(session, usecase_name, version)


def sample(session: Session, actor: str | None, usecase_name: str, version: int | None = None,
           rows: int = 5) -> DatasetSample:
    """A version's record and its first ``rows`` rows, for a member of the use case."""
    found = visible_version(session, actor, usecase_name, version)
    head = read_version(session, usecase_name, found.version).slice(0, rows).to_pylist()
    return DatasetSample(version=found, rows=head)

"""The registry: MLflow's Model Registry holds the versions; valueloop's table holds their lineage
(run, dataset version, DPIA version), the artifact digest, the test report, the owner's acceptance
and the aliases. Aliases change only through :func:`promote`, after its gates, in the database's
transaction; MLflow's follow once it commits (``learn.aliases``)."""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.errors import Conflict, GateClosed, InvalidInput, PermissionDenied
from valueloop.learn import compiled, tracking
from valueloop.learn.aliases import ALIASES, reconcile_after_commit
from valueloop.learn.compiled import CompiledRecord
from valueloop.learn.model_tests import TestResult
from valueloop.learn.modelcard import require_signed_champion
from valueloop.learn.tables import ModelVersion, TrainingRun
from valueloop.learn.versions import kpi_checks, version_row
from valueloop.learn.views import ModelVersionView
from valueloop.outcomes import audit
from valueloop.store import intents
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.usecases import get_usecase, spec_of, viewed
from valueloop.outcomes.users import get_user
from valueloop.store.models import UseCase, utcnow

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

    from valueloop.learn.dataset import Target

#: MLflow writes this bookkeeping file into a model directory when it resolves ``models:/`` URIs.
_NOT_MODEL = {"registered_model_meta"}


def artifact_digest(directory: str | Path) -> str:
    """SHA-256 over every file of an MLflow model directory (relative path and content)."""
    root = Path(directory)
    total = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _NOT_MODEL):
        total.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            total.update(hashlib.file_digest(handle, "sha256").digest())
    return total.hexdigest()


def _local(settings: Settings, uri: str) -> Path:
    import mlflow.artifacts

    tracking.configure(settings)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=settings.mlflow_uri))


def view(session: Session, row: ModelVersion) -> ModelVersionView:
    run = session.scalar(select(TrainingRun).where(TrainingRun.run_id == row.run_id))
    metrics = run.metrics if run else {}
    return ModelVersionView(
        usecase=row.usecase, registered_name=row.registered_name, version=row.version,
        run_id=row.run_id, candidate=run.candidate["name"] if run else "",
        dataset_version=row.dataset_version, dpia_version=row.dpia_version,
        artifact_uri=row.artifact_uri, artifact_digest=row.artifact_digest, metrics=metrics,
        kpis=kpi_checks(get_usecase(session, row.usecase), metrics),
        tests=[TestResult.model_validate(t) for t in row.test_report["tests"]],
        tests_passed=row.tests_passed, acceptance=row.acceptance, accepted_by=row.accepted_by,
        acceptance_comment=row.acceptance_comment, accepted_at=row.accepted_at,
        aliases=list(row.aliases), created_at=row.created_at,
        compiled=CompiledRecord.model_validate(row.compiled) if row.compiled else None,
    )


def register(session: Session, settings: Settings, actor: str, usecase: UseCase, run: TrainingRun,
             model_uri: str, tests: list[TestResult], *, compile: bool = False) -> ModelVersion:
    """Register a model that passed its tests and record its lineage and digest; with
    ``compile``, its trees compiled beside it (or the note why not)."""
    import mlflow

    if not all(t.passed for t in tests):
        raise Conflict(f"run {run.run_id} failed its tests; only a tested model is registered")
    tracking.configure(settings)
    with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Successfully registered ..."
        registered = mlflow.register_model(model_uri, usecase.name, tags={
            tracking.TAG + "dataset_version": str(run.dataset_version),
            tracking.TAG + "dpia_version": str(run.dpia_version),
            tracking.TAG + "run_id": run.run_id,
        })
    intents.crash_point("after-mlflow-registration")
    local = _local(settings, registered.source)
    digest = artifact_digest(local)
    tracking.client(settings).set_model_version_tag(usecase.name, registered.version,
                                                    tracking.TAG + "artifact_digest", digest)
    built = _compile(settings, run.run_id, local).model_dump(exclude_none=True) if compile else None
    row = ModelVersion(
        usecase=usecase.name, registered_name=usecase.name, version=int(registered.version),
        run_id=run.run_id, dataset_version=run.dataset_version, dpia_version=run.dpia_version,
        artifact_uri=registered.source, artifact_digest=digest,
        test_report={"tests": [t.model_dump() for t in tests]}, tests_passed=True,
        acceptance="pending", aliases=[], compiled=built,
    )
    session.add(row)
    session.flush()
    audit.record(session, actor, "model.register", "model_version", f"{usecase.name}/v{row.version}",
                 usecase=usecase.name,
                 after={"run_id": run.run_id, "dataset_version": run.dataset_version,
                        "dpia_version": run.dpia_version, "artifact_digest": digest,
                        **({"compiled": built} if built is not None else {})})
    return row


def _compile(settings: Settings, run_id: str, model_dir: Path) -> CompiledRecord:
    """The model's trees compiled and logged to its run as ``compiled/model.so``, with the
    library's digest; or the note why the model is served by Python."""
    import tempfile

    import mlflow.sklearn
    from mlflow.models import Model

    estimator = mlflow.sklearn.load_model(str(model_dir))
    example = Model.load(str(model_dir)).load_input_example(str(model_dir))
    with tempfile.TemporaryDirectory() as folder:
        library, note = compiled.compile_model(estimator, example, Path(folder))
        if library is None:
            return CompiledRecord(note=note)
        client = tracking.client(settings)
        client.log_artifact(run_id, str(library), compiled.ARTIFACT_DIR)
        uri = f"{client.get_run(run_id).info.artifact_uri}/{compiled.ARTIFACT_DIR}/{compiled.LIBRARY}"
        return CompiledRecord(library=uri, digest=compiled.file_digest(library), compiler=compiled.compiler())


def in_service(session: Session, usecase: str) -> ModelVersion | None:
    """The champion, else the newest registered version: the model whose training data the
    monitor's reference and the label rule follow."""
    rows = session.scalars(select(ModelVersion).where(ModelVersion.usecase == usecase)
                           .order_by(ModelVersion.version)).all()
    return next((r for r in rows if "champion" in r.aliases), rows[-1]) if rows else None


def target_of(session: Session, usecase: str, ref: int | str) -> Target:
    """What a model version predicts: task, classes, positive class and decision threshold."""
    from valueloop.learn.dataset import Target

    row = version_row(session, usecase, ref)
    record = session.scalar(select(TrainingRun.target).where(TrainingRun.run_id == row.run_id))
    return Target.of(record, spec_of(get_usecase(session, usecase)).model.task)


def get_model(session: Session, actor: str | None, usecase: str, ref: int | str) -> ModelVersionView:
    found = viewed(session, actor, usecase)
    return view(session, version_row(session, found.name, ref))


def list_models(session: Session, actor: str | None, usecase: str) -> list[ModelVersionView]:
    found = viewed(session, actor, usecase)
    rows = session.scalars(select(ModelVersion).where(ModelVersion.usecase == found.name)
                           .order_by(ModelVersion.version))
    return [view(session, r) for r in rows]


def verified_model_dir(session: Session, settings: Settings, usecase: str, ref: int | str) -> tuple[int, Path]:
    """The version number and local MLflow model directory of a registered model, after its
    files match the recorded digest (the Deploy phase copies it into a bundle)."""
    row = version_row(session, get_usecase(session, usecase).name, ref)
    local = _local(settings, f"models:/{row.registered_name}/{row.version}")
    digest = artifact_digest(local)
    if digest != row.artifact_digest:
        raise Conflict(f"model {usecase} v{row.version}: artifact digest {digest[:12]}… does not match "
                       f"the registered {row.artifact_digest[:12]}…; the files at {local} changed "
                       "since registration and are not loaded")
    return row.version, local


def compiled_library(session: Session, settings: Settings, usecase: str, ref: int | str) -> bytes | None:
    """A version's compiled library, read once and matched against its recorded digest (these
    bytes are what loads); None when the version has none (the Python model serves)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    row = version_row(session, get_usecase(session, usecase).name, ref)
    record = CompiledRecord.model_validate(row.compiled or {})
    if record.library is None or record.digest is None:
        return None
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=record.library,
                                                         tracking_uri=settings.mlflow_uri))
        library = local.read_bytes()
    except (MlflowException, OSError) as error:
        raise Conflict(f"model {usecase} v{row.version}: compiled library {record.library} cannot be read "
                       f"({error}); register the model again to recompile it") from error
    digest = hashlib.sha256(library).hexdigest()
    if digest != record.digest:
        raise Conflict(f"model {usecase} v{row.version}: compiled library digest {digest[:12]}… does not match "
                       f"the registered {record.digest[:12]}…; the file at {local} changed since "
                       "registration and is not loaded")
    return library


def load_model(session: Session, settings: Settings, usecase: str, ref: int | str) -> PyFuncModel:
    """The registered model as an MLflow pyfunc, after its files match the recorded digest."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(verified_model_dir(session, settings, usecase, ref)[1]))


def accept(session: Session, actor: str | None, usecase: str, version: int, *, accepted: bool,
           comment: str) -> ModelVersionView:
    """The owner's verdict on a model version against the business goal, with a comment."""
    found = get_usecase(session, usecase)
    acting = get_user(session, actor)
    require(session, acting, Action.accept_model, found)
    if not comment.strip():
        raise InvalidInput("comment: the owner's decision needs a comment saying why")
    row = version_row(session, found.name, version)
    trainer = session.scalar(select(TrainingRun.actor).where(TrainingRun.run_id == row.run_id))
    if trainer == acting.name and not acting.is_system:  # a policy accepts under the owner's standing rule
        raise PermissionDenied(f"{acting.name} may not accept model {found.name} v{row.version}: "
                               f"{acting.name} trained it, and nobody judges their own work")
    before = {"acceptance": row.acceptance, "by": row.accepted_by}
    row.acceptance = "accepted" if accepted else "rejected"
    row.accepted_by, row.acceptance_comment, row.accepted_at = acting.name, comment, utcnow()
    session.flush()
    audit.record(session, acting.name, f"model.{'accept' if accepted else 'reject'}", "model_version",
                 f"{found.name}/v{row.version}", usecase=found.name, before=before,
                 after={"acceptance": row.acceptance, "by": acting.name, "comment": comment})
    return view(session, row)


def promote(session: Session, settings: Settings, actor: str | None, usecase: str, version: int,
            alias: str = "champion") -> ModelVersionView:
    """Give a version an alias: champion needs passed tests and the owner's acceptance;
    challenger needs passed tests. The alias moves off whichever version held it."""
    found = get_usecase(session, usecase, for_update=True)  # one promotion of a use case at a time
    acting = get_user(session, actor)
    require(session, acting, Action.promote, found)
    if alias not in ALIASES:
        raise InvalidInput(f"alias: '{alias}' is not one of {', '.join(ALIASES)}")
    row = version_row(session, found.name, version)
    missing = [] if row.tests_passed else ["its model tests did not pass"]
    if alias == "champion" and row.acceptance != "accepted":
        missing.append(f"the owner has not accepted it (acceptance: {row.acceptance}; "
                       f"`valueloop accept {found.name} {row.version} -m COMMENT` by {spec_of(found).owner})")
    if missing:
        raise GateClosed(f"model {found.name} v{row.version} cannot become {alias}: " + "; ".join(missing))
    if alias == "champion":
        require_signed_champion(session, found, row)
    if alias == "challenger" and "champion" in row.aliases:
        raise Conflict(f"model {found.name} v{row.version} is the champion; promote another "
                       "version to champion before making this one a challenger")
    holders = session.scalars(select(ModelVersion).where(ModelVersion.usecase == found.name)).all()
    before = {"holder": next((h.version for h in holders if alias in h.aliases), None)}
    other = next(a for a in ALIASES if a != alias)
    for holder in holders:
        holder.aliases = [a for a in holder.aliases if a != alias and (holder is not row or a != other)]
    row.aliases = [*row.aliases, alias]
    session.flush()
    audit.record(session, acting.name, "model.promote", "model_version", f"{found.name}/v{row.version}",
                 usecase=found.name, before=before, after={"alias": alias, "holder": row.version})
    reconcile_after_commit(session, settings, found.name)
    return view(session, row)

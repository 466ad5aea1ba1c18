"""``valueloop doctor``: find, and with ``repair`` mend, what a killed process left half-written.

A process killed between an external write and its rows leaves a pending intent, a Delta version
nobody recorded, data files no version holds, a staging folder, an MLflow run RUNNING forever or a
registered model version valueloop does not know. Nothing reads or builds on these (an append
builds on the last recorded version); the doctor reports them and, when asked, rolls them back.
It runs at ``valueloop server`` start (repairing) and before ingest, train and promote (reporting,
on the one use case they touch).
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import Settings
from valueloop.data import delta
from valueloop.data.tables import DatasetVersion
from valueloop.errors import PermissionDenied
from valueloop.outcomes import audit
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.usecases import get_usecase
from valueloop.outcomes.users import get_user
from valueloop.store import intents
from valueloop.store.models import UseCase

#: who repairs at server start (and completes a batch job whose process died)
DOCTOR = "policy:doctor"


class Finding(BaseModel):
    """One thing left half-written, what repairing it does, and whether it was done."""

    kind: str
    usecase: str | None
    target: str
    detail: str
    repair: str
    repaired: bool = False


class Report(BaseModel):
    findings: list[Finding]
    repaired: bool

    @property
    def clean(self) -> bool:
        return all(f.repaired for f in self.findings)


def _recorded(session: Session, usecase: UseCase) -> list[int]:
    return list(session.scalars(select(DatasetVersion.version).where(DatasetVersion.usecase_id == usecase.id)))


def _pending(session: Session, usecase: str | None) -> list[intents.Intent]:
    return [i for i in intents.pending(session, usecase=usecase) if not intents.writer_alive(i)]


def _intent_findings(session: Session, usecase: str | None, actor: str, repair: bool,
                     kinds: tuple[str, ...] | None = None) -> list[Finding]:
    """Pending intents whose writer died. A batch output is completed when it was published whole
    and rolled back otherwise; the other writes were rolled back (by the checks below) or never
    happened, so their intents end orphaned."""
    from valueloop.deploy.batch import recover_publish

    found = []
    for row in _pending(session, usecase):
        if kinds is not None and row.kind not in kinds:
            continue
        finding = Finding(kind="pending intent", usecase=row.usecase, target=row.target,
                          detail=f"{row.kind} by {row.actor} (process {row.pid} on {row.host}, "
                                 f"{row.created_at:%Y-%m-%d %H:%M:%S} UTC) never finished",
                          repair="mark it orphaned; what it wrote is rolled back below")
        if row.kind == intents.BATCH_OUTPUT:
            finding.repair = recover_publish(session, actor, row, repair=repair)
        elif repair:
            intents.finish(session, row.id, intents.ORPHANED, "its process died before the rows were written; "
                           "valueloop doctor rolled back what it wrote")
        finding.repaired = repair
        found.append(finding)
    return found


def _delta_findings(session: Session, settings: Settings, usecase: UseCase, repair: bool) -> list[Finding]:
    table, recorded = delta.table_path(settings, usecase.name), _recorded(session, usecase)
    if any(intents.writer_alive(i) for i in intents.pending(session, intents.DELTA_COMMIT, usecase.name)):
        return []  # an ingest is committing right now: its files are not yet recorded
    found = []
    if versions := delta.unrecorded(table, recorded):
        finding = Finding(kind="unrecorded Delta versions", usecase=usecase.name, target=str(table),
                          detail=f"version(s) {', '.join(map(str, versions))} committed without a row; "
                                 f"the last recorded is {max(recorded, default='none')}",
                          repair="restore the table to its last recorded version")
        if repair:
            delta.roll_back(table, recorded)
            finding.repaired = True
        found.append(finding)
    if files := delta.unreferenced(table, recorded):
        finding = Finding(kind="unreferenced data files", usecase=usecase.name, target=str(table),
                          detail=f"{len(files)} file(s), {sum(f.size() for f in files)} bytes, "
                                 "in no recorded version",
                          repair="delete them")
        if repair:
            for f in files:
                f.delete()
            finding.repaired = True
        found.append(finding)
    return found


def _mlflow_store_exists(settings: Settings) -> bool:
    """Whether MLflow has a store to examine: opening a SQLite one would create it."""
    uri = settings.mlflow_uri
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()


def _training_alive(session: Session, training_id: str, started_ms: int) -> bool:
    """Whether a training may still write its runs: its intent's process runs (a run without
    an intent, older than intents, counts as alive for an hour)."""
    row = intents.for_target(session, intents.MLFLOW_RUN, intents.training_target(training_id))
    if row is None:
        return time.time() - started_ms / 1000 < intents.STALE_SECONDS
    return row.status == intents.PENDING and intents.writer_alive(row)


def _mlflow_findings(session: Session, settings: Settings, usecase: UseCase, repair: bool) -> list[Finding]:
    """Runs left RUNNING by a killed training (ended FAILED with the reason) and registered model
    versions valueloop has no row for (tagged orphaned: valueloop never lists or serves them)."""
    from valueloop.learn import tracking
    from valueloop.learn.tables import ModelVersion

    client = tracking.client(settings)
    experiment = client.get_experiment_by_name(usecase.name)
    found = []
    running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'") if experiment else []
    for run in running:
        training_id = run.data.tags.get(tracking.TAG + "training_id", "")
        if _training_alive(session, training_id, run.info.start_time):
            continue
        finding = Finding(kind="MLflow run RUNNING", usecase=usecase.name, target=f"run {run.info.run_id}",
                          detail=f"{run.info.run_name} of training {training_id or '(none)'}, whose process died",
                          repair="end it FAILED, with the reason in its valueloop.error tag")
        if repair:
            client.set_tag(run.info.run_id, tracking.TAG + "error", "its process died; ended by valueloop doctor")
            client.set_terminated(run.info.run_id, "FAILED")
            finding.repaired = True
        found.append(finding)
    known = set(session.scalars(select(ModelVersion.version).where(ModelVersion.usecase == usecase.name)))
    for version in client.search_model_versions(f"name = '{usecase.name}'"):
        if int(version.version) in known or tracking.TAG + "orphaned" in (version.tags or {}):
            continue  # its run is read only for a version valueloop does not know (one read per version)
        run_tags = client.get_run(version.run_id).data.tags if version.run_id else {}
        if _training_alive(session, run_tags.get(tracking.TAG + "training_id", ""), version.creation_timestamp):
            continue
        finding = Finding(kind="unknown model version", usecase=usecase.name,
                          target=f"model {usecase.name} version {version.version}",
                          detail=f"registered from run {version.run_id} by a training whose process died",
                          repair="tag it valueloop.orphaned; valueloop never lists, promotes or serves it")
        if repair:
            client.set_model_version_tag(usecase.name, version.version, tracking.TAG + "orphaned",
                                         "registered by a training whose process died; valueloop has no row for it")
            finding.repaired = True
        found.append(finding)
    return found


def _stale_staging(settings: Settings) -> list[Path]:
    """Staging folders whose process is gone, or older than an hour."""
    root = delta.staging_root(settings)
    stale = []
    for work in sorted(root.glob("*")) if root.is_dir() else []:
        owner = (work / delta.OWNER).read_text().split() if (work / delta.OWNER).is_file() else []
        dead = len(owner) == 2 and owner[0] == socket.gethostname() and not intents.pid_alive(int(owner[1]))
        if dead or time.time() - work.stat().st_mtime > intents.STALE_SECONDS:
            stale.append(work)
    return stale


def _staging_findings(settings: Settings, repair: bool) -> list[Finding]:
    found = []
    for work in _stale_staging(settings):
        size = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
        finding = Finding(kind="staging folder", usecase=None, target=str(work),
                          detail=f"left by a killed ingest, {size} bytes", repair="delete it")
        if repair:
            shutil.rmtree(work, ignore_errors=True)
            finding.repaired = True
        found.append(finding)
    return found


def _partial_log_findings(settings: Settings, usecase: str | None, repair: bool) -> list[Finding]:
    """Prediction-log files a killed writer left under their temporary names (never read)."""
    from valueloop.deploy.predlog import partial_files

    found = []
    for path in partial_files(settings, usecase):
        finding = Finding(kind="prediction-log partial file", usecase=path.parent.parent.name, target=str(path),
                          detail=f"{path.stat().st_size} bytes written by a process that died mid-flush; "
                                 "no reader sees it", repair="delete it")
        if repair:
            path.unlink(missing_ok=True)
            finding.repaired = True
        found.append(finding)
    return found


def examine(session: Session, settings: Settings, usecase: str | None = None, *,
            repair: bool = False, actor: str = DOCTOR) -> Report:
    """Everything half-written, for one use case or all; repaired (as ``actor``) when ``repair``."""
    usecases = [get_usecase(session, usecase)] if usecase else list(session.scalars(select(UseCase)))
    findings = _intent_findings(session, usecase, actor, repair)
    findings += _partial_log_findings(settings, usecase, repair)
    mlflow = _mlflow_store_exists(settings)
    for one in usecases:
        findings += _delta_findings(session, settings, one, repair)
        findings += _mlflow_findings(session, settings, one, repair) if mlflow else []
    if usecase is None:
        findings += _staging_findings(settings, repair)
    return Report(findings=findings, repaired=repair)


#: the objects ingest, train and promote touch: what the doctor examines before each
TOUCHES = {"ingest": ("delta",), "train": ("delta", "mlflow"), "promote": ("mlflow",)}
_KINDS = {"delta": (intents.DELTA_COMMIT,), "mlflow": (intents.MLFLOW_RUN, intents.MLFLOW_REGISTER)}


def before(session: Session, settings: Settings, usecase: str, step: str) -> Report:
    """What is half-written among the objects ``step`` is about to touch in ``usecase``, found and
    never repaired (that takes ``--repair`` or a server start); the step never uses any of it."""
    one = session.scalar(select(UseCase).where(UseCase.name == usecase))
    if one is None:
        return Report(findings=[], repaired=False)  # the step itself says it does not exist
    touched = TOUCHES[step]
    findings = _intent_findings(session, usecase, DOCTOR, False, sum((_KINDS[t] for t in touched), ()))
    findings += _delta_findings(session, settings, one, False) if "delta" in touched else []
    if "mlflow" in touched and _mlflow_store_exists(settings):
        findings += _mlflow_findings(session, settings, one, False)
    return Report(findings=findings, repaired=False)


def repair_at_start(settings: Settings) -> Report:
    """What ``valueloop server`` runs before it serves: every repair, audited as ``policy:doctor``."""
    from valueloop.outcomes.users import system_user
    from valueloop.store import session

    with session(settings) as s:
        system_user(s, DOCTOR)
        report = examine(s, settings, repair=True)
        if report.findings:
            audit.record(s, DOCTOR, "doctor.repair", "home", "*",
                         after={"repaired": [f.model_dump() for f in report.findings]})
    return report


def doctor(session: Session, settings: Settings, actor: str | None, usecase: str | None = None, *,
           repair: bool = False) -> Report:
    """``examine`` for a user: operations on the use case, or the admin for every use case;
    a repair is audited with what it found."""
    acting = get_user(session, actor)
    if usecase:
        if not acting.is_admin:
            require(session, acting, Action.operate, get_usecase(session, usecase))
    elif not acting.is_admin:
        raise PermissionDenied(f"{acting.name} may not examine every use case: requires admin; "
                               "name one with --usecase to examine it as its operations")
    report = examine(session, settings, usecase, repair=repair, actor=acting.name)
    if repair and report.findings:
        audit.record(session, acting.name, "doctor.repair", "home", usecase or "*", usecase=usecase,
                     after={"repaired": [f.model_dump() for f in report.findings]})
    return report

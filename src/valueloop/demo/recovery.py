"""Demo chapter: nothing half-written, a backup taken while everything runs, the DPIA's retention and a
data subject's erasure carried out, the backup restored elsewhere with the erasure re-applied."""

from __future__ import annotations

from valueloop.config import load_settings
from valueloop.demo import DemoContext
from valueloop.errors import Conflict


def run(ctx: DemoContext) -> None:
    import pyarrow.csv as pacsv

    from valueloop.operate.erasure import erase
    from valueloop.operate.retention import enforce
    from valueloop.outcomes import audit
    from valueloop.recovery.backup import bring_back, take, verify
    from valueloop.recovery.doctor import doctor
    from valueloop.store import session

    ctx.chapter("Recover · doctor, backup, restore")
    out, settings = ctx.console, ctx.settings
    with session(settings) as s:
        report = doctor(s, settings, "admin")
    out.print(f"`valueloop doctor`: {len(report.findings)} thing(s) half-written (pending intents, Delta "
              "versions without a row, staging folders, MLflow runs left RUNNING, unknown model versions, "
              "half-published batch outputs, prediction-log files a killed writer left)")
    folder = ctx.workspace / "backups" / "demo.tar.gz"  # a name without .tar.gz: the same as a folder
    manifest = take(settings, "admin", folder)
    out.print(f"`valueloop backup {folder}`: one archive of the {manifest.metadata} metadata, MLflow, Delta "
              f"tables, artifacts and prediction log, {len(manifest.files)} files with their SHA-256 in "
              "manifest.json")
    out.print(f"`valueloop backup verify {folder}`: {len(verify(folder).files)} files match the manifest; "
              "`valueloop server` takes them on a schedule with backup_dir, backup_every, backup_keep_daily "
              "and backup_keep_weekly in config.yaml")
    kept = enforce(settings, "pia", "churn")
    out.print(f"`valueloop privacy enforce-retention churn` (pia; hourly in `valueloop server`): "
              f"{kept.predictions_deleted} prediction(s), {kept.labels_deleted} label(s), "
              f"{kept.dataset_files_deleted} dataset file(s) past the DPIA's retention deleted")
    email = pacsv.read_csv(ctx.state["project"] / "data" / "customers.csv")["email"][0].as_py()
    gone = erase(settings, "pia", "churn", "email", email)
    out.print(f"`valueloop privacy erase churn --subject email=…` (pia): {gone.dataset_rows} dataset row(s) "
              f"(new version {gone.dataset_version}), {gone.predictions} prediction(s), {gone.stream_entries} "
              "stream entry(ies), recorded by a keyed token only; models to retrain at the "
              f"next cycle: {', '.join(map(str, gone.erasure.models_to_retrain)) or 'none'}")
    restored = load_settings({"VALUELOOP_HOME": str(ctx.workspace / "restored")})
    back = bring_back(restored, "admin", folder)
    out.print(f"the backup predates the erasure: the restore re-applied {len(back.erasures)} recorded erasure(s)")
    with session(restored) as s:
        chain = audit.verify(s)
    if not chain.ok:
        raise Conflict(f"the restored audit chain is broken at event #{chain.first_broken}: {chain.problem}")
    out.print(f"`valueloop restore` into {restored.home}: MLflow's absolute artifact locations rewritten; "
              f"audit chain verified ({chain.events} events)")

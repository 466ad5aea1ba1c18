"""Demo chapter: nothing half-written, a backup taken while everything runs, restored elsewhere."""

from __future__ import annotations

from valueloop.config import load_settings
from valueloop.demo import DemoContext
from valueloop.errors import Conflict


def run(ctx: DemoContext) -> None:
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
    folder = ctx.workspace / "backups" / "demo"
    manifest = take(settings, "admin", folder)
    out.print(f"`valueloop backup {folder}`: {manifest.metadata} metadata, MLflow, Delta tables, artifacts "
              f"and logs, {len(manifest.files)} files with their SHA-256 in manifest.json")
    out.print(f"`valueloop backup verify {folder}`: {len(verify(folder).files)} files match the manifest; "
              "`valueloop server` takes them on a schedule with backup_dir, backup_every, backup_keep_daily "
              "and backup_keep_weekly in config.yaml")
    restored = load_settings({"VALUELOOP_HOME": str(ctx.workspace / "restored")})
    bring_back(restored, "admin", folder)
    with session(restored) as s:
        chain = audit.verify(s)
    if not chain.ok:
        raise Conflict(f"the restored audit chain is broken at event #{chain.first_broken}: {chain.problem}")
    out.print(f"`valueloop restore` into {restored.home}: MLflow's absolute artifact locations rewritten; "
              f"audit chain verified ({chain.events} events)")

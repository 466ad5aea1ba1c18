"""Demo chapter 2, Data: dave ingests the CRM export after the DPIA approval; the treatments,
the quality report and the new dataset version; a second load of the same export is refused."""

from __future__ import annotations

import pyarrow.csv as pacsv

from valueloop import data
from valueloop.data.treatments import pseudonym
from valueloop.demo import DemoContext
from valueloop.errors import InvalidInput, PermissionDenied
from valueloop.examples import load_generator
from valueloop.store import session

ROWS = 4000


def run(ctx: DemoContext) -> None:
    out, settings, project = ctx.console, ctx.settings, ctx.state["project"]
    ctx.chapter("Data: extract, treat, check and version the customer data")

    export = load_generator("churn").write(project / "data", rows=ROWS, seed=7)
    out.print(f"dave exported {ROWS} customers from the CRM to {export.relative_to(ctx.workspace)}")

    try:
        with session(settings) as s:
            data.ingest(s, settings, "dana", "churn", project_dir=project)
    except PermissionDenied as refused:
        out.print(f"[yellow]refused:[/yellow] {refused}")

    with session(settings) as s:
        version = data.ingest(s, settings, "dave", "churn", project_dir=project)
    out.print(f"dave ingested [bold]churn@{version.version}[/bold]: {version.row_count} rows, "
              f"{len(version.columns)} columns, DPIA v{version.dpia_version}, transform "
              f"{version.transform_hash[:12]}…, source digest "
              f"{version.source_fingerprints['customers']['digest'][:12]}…")
    out.print("treatments applied: " + ", ".join(
        f"{column}={t['treatment']}{t['params'] or ''}" for column, t in version.treatments.items()))

    raw = pacsv.read_csv(export).slice(0, 1).to_pylist()[0]
    with session(settings) as s:
        stored = data.read_version(s, "churn", version.version).slice(0, 1).to_pylist()[0]
    out.print(f"first customer in the export:  name={raw['name']!r} email={raw['email']!r} "
              f"birth_date={raw['birth_date']} postcode={raw['postcode']!r}")
    out.print(f"first customer in the dataset: name {'absent' if 'name' not in stored else 'PRESENT'}, "
              f"email={stored['email'][:16]}… (= HMAC of the e-mail: "
              f"{pseudonym(raw['email'], settings.pseudonym_key) == stored['email']}), "
              f"birth_date={stored['birth_date']}, postcode={stored['postcode']!r}")

    report = version.quality
    out.print(f"quality: {len(report['checks'])} checks, {report['errors']} errors, "
              f"{report['warnings']} warnings")
    for check in report["checks"]:
        colour = "green" if check["status"] == "passed" else "yellow"
        out.print(f"  [{colour}]{check['status']:<6}[/{colour}] {check['name']:<32} {check['message']}")

    # The same export loaded again, appended by mistake: the duplicate customers block it.
    try:
        with session(settings) as s:
            data.ingest(s, settings, "dave", "churn", project_dir=project, mode="append")
    except InvalidInput as blocked:
        out.print(f"[yellow]blocked:[/yellow] {blocked}")
    with session(settings) as s:
        versions = [v.version for v in data.list_versions(s, "churn")]
    out.print(f"dataset versions of churn: {versions} (the refused load wrote nothing)")
    ctx.state["dataset_version"] = version.version

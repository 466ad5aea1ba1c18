"""``valueloop data ...``: ingest versioned datasets, check them, and look at their versions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from valueloop.cli._common import JsonOption, console, group, report_half_written, show, table
from valueloop.cli.remote import Route, answer, call, segment, served, server

if TYPE_CHECKING:
    from valueloop.data import DatasetVersionView

app = group("Ingest, check and version the data of a use case (ELT, DPIA treatments, quality).")

ProjectOption = typer.Option(
    None, "--project", show_default=False,
    help="Directory of the use case file; relative source paths start here (default: the folder of the "
         "last ingest, else the current one). In server mode the server reads the folder of the last ingest.",
)


def parse_ref(text: str) -> tuple[str, int | None]:
    """``USECASE@N`` (or ``USECASE`` for the newest version)."""
    from valueloop.refs import DatasetRef

    ref = DatasetRef.parse(text, "dataset")
    return ref.usecase, ref.version


def _route(name: str, number: int | None, tail: str = "", **params: Any) -> Route:
    """The route of version ``number`` of a use case's datasets (None: the newest)."""
    version = "newest" if number is None else str(number)
    return Route("GET", f"/api/usecases/{segment(name)}/datasets/{version}{tail}", params=params)


def _visible(ctx: typer.Context, dataset: str) -> DatasetVersionView:
    """The version ``USECASE@N`` names, if the acting user may see the use case."""
    from valueloop.data.service import visible_version

    name, number = parse_ref(dataset)
    return call(ctx, _route(name, number), visible_version, name, number)


@contextmanager
def _progress() -> Iterator[Any]:
    """A progress line on stderr (stdout stays clean for --json): the step and the rows read."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                  TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", rows=0)
        yield lambda step, rows: bar.update(task, description=step, rows=rows)


def _render_quality(report: dict[str, Any]) -> None:
    table(f"quality: {report['errors']} error(s), {report['warnings']} warning(s) on {report['rows']:,} rows",
          ["check", "severity", "status", "failing", "detail"],
          [(r["name"], r["severity"], r["status"], r["failing"], r["message"]) for r in report["checks"]])
    for r in report["checks"]:
        if r["sample"]:
            console().print(f"  failing rows of {r['name']}: {r['sample'][:3]}")


def _render_lineage(v: DatasetVersionView) -> None:
    table(f"treatments applied (DPIA v{v.dpia_version})", ["column", "treatment", "params", "sources"],
          [(c, t["treatment"], t["params"] or "", ", ".join(t["sources"])) for c, t in v.treatments.items()])
    table("sources", ["source", "kind", "rows", "digest"],
          [(n, f["kind"], f"{f['rows']:,}", f["digest"][:16]) for n, f in v.source_fingerprints.items()])


def _render_version(v: DatasetVersionView) -> None:
    console().print(f"[bold]{v.usecase}@{v.version}[/bold]: {v.row_count:,} rows, {len(v.columns)} columns "
                    f"({v.mode}) by {v.actor} at {v.created_at:%Y-%m-%d %H:%M} UTC → {v.uri}")


def _render_profile(v: DatasetVersionView) -> None:
    def short(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)[:24]

    table(f"profile of {v.usecase}@{v.version}",
          ["column", "type", "nulls", "distinct", "min", "max", "mean", "std", "top values"],
          [(name, s["type"], s["nulls"], f"{'~' if s.get('distinct_approximate', True) else ''}{s['distinct']}",
            short(s.get("min")), short(s.get("max")),
            short(s.get("mean")), short(s.get("std")),
            ", ".join(f"{str(t['value'])[:12]} ({t['count']})" for t in s.get("top_values", [])[:3]))
           for name, s in v.profile["columns"].items()])


def _in_project(project: Path | None) -> Path | None:
    """The project folder a local command names; without it the service reads the folder of the
    last ingest, else the current directory, as in server mode, where no client names a folder."""
    from valueloop.errors import InvalidInput

    if project is not None and server():
        raise InvalidInput(f"--project {project}: in server mode the server reads the folder of the use case's "
                           "last ingest; a client never names a folder on the server")
    return project


@app.command("ingest")
@served
def ingest(
    ctx: typer.Context,
    usecase: str,
    project: Path = ProjectOption,
    mode: str = typer.Option(None, "--mode", help="append or overwrite (default: the file's data.mode)."),
    as_json: bool = JsonOption,
) -> None:
    """Extract, treat, transform and check the sources, then commit a new dataset version."""
    from valueloop.config import load_settings
    from valueloop.data import DatasetVersionView
    from valueloop.data import ingest as ingest_
    from valueloop.store import session

    folder = _in_project(project)

    def local(who: str | None) -> DatasetVersionView:
        settings = load_settings()
        report_half_written(settings, who, usecase, "ingest")
        with _progress() as progress, session(settings) as s:
            return ingest_(s, settings, who, usecase, project_dir=folder, mode=mode, progress=progress)

    v = answer(ctx, Route("POST", f"/api/usecases/{segment(usecase)}/datasets", json={"mode": mode}),
               DatasetVersionView, local)

    def render() -> None:
        _render_lineage(v)
        _render_quality(v.quality)
        _render_version(v)

    show(v, as_json, render)


@app.command("check")
@served
def check(ctx: typer.Context, usecase: str, project: Path = ProjectOption, as_json: bool = JsonOption) -> None:
    """Run the quality checks on the data as it is now, without writing a version."""
    from valueloop.config import load_settings
    from valueloop.data import check as check_
    from valueloop.data.quality import failures
    from valueloop.errors import InvalidInput
    from valueloop.store import session

    folder = _in_project(project)

    def local(who: str | None) -> dict[str, Any]:
        settings = load_settings()
        with _progress() as progress, session(settings) as s:
            return check_(s, settings, who, usecase, project_dir=folder, progress=progress)

    report = answer(ctx, Route("POST", f"/api/usecases/{segment(usecase)}/datasets/check"), dict[str, Any], local)
    show(report, as_json, lambda: _render_quality(report))
    if not report["passed"]:
        raise InvalidInput(f"{report['errors']} error-level check(s) failed; an ingest would be refused",
                           problems=failures(report))


@app.command("versions")
@served
def versions(ctx: typer.Context, usecase: str, as_json: bool = JsonOption) -> None:
    """Every dataset version of a use case, oldest first."""
    from valueloop.data.service import visible_versions

    found = call(ctx, Route("GET", f"/api/usecases/{segment(usecase)}/datasets"), visible_versions, usecase)
    show(found, as_json, lambda: table(
        f"dataset versions of {usecase}",
        ["version", "created", "by", "mode", "rows", "columns", "DPIA", "quality", "transform"],
        [(v.version, f"{v.created_at:%Y-%m-%d %H:%M}", v.actor, v.mode, f"{v.row_count:,}", len(v.columns),
          f"v{v.dpia_version}", f"{v.quality['errors']} errors, {v.quality['warnings']} warnings",
          v.transform_hash[:12]) for v in found]))


@app.command("show")
@served
def show_(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., metavar="USECASE@N"),
    rows: int = typer.Option(5, "--rows", min=0, help="How many first rows to print."),
    as_json: bool = JsonOption,
) -> None:
    """A version's schema, lineage, quality and profile, and its first rows (read back from Delta)."""
    from valueloop.data.service import sample

    name, number = parse_ref(dataset)
    found = call(ctx, _route(name, number, "/sample", rows=rows), sample, name, number, rows)
    v, head = found.version, found.rows

    def render() -> None:
        _render_version(v)
        table("schema", ["column", "type"], [(c.name, c.type) for c in v.columns])
        _render_lineage(v)
        console().print(f"transform {v.transform_hash[:16]}…, project {v.project_dir}")
        _render_quality(v.quality)
        _render_profile(v)
        if head:
            table(f"first {len(head)} rows", list(head[0]), [list(r.values()) for r in head])

    show(found, as_json, render)


@app.command("diff")
@served
def diff(
    ctx: typer.Context,
    old: str = typer.Argument(..., metavar="USECASE@N"),
    new: str = typer.Argument(..., metavar="USECASE@M"),
    as_json: bool = JsonOption,
) -> None:
    """What changed between two versions: schema, row count and per-column statistics."""
    from valueloop.data.diff import diff as diff_

    changes = diff_(_visible(ctx, old), _visible(ctx, new))

    def render() -> None:
        rows = changes["rows"]
        console().print(f"[bold]{old} → {new}[/bold]: rows {rows['from']:,} → {rows['to']:,} ({rows['change']:+,})")
        table("schema changes", ["column", "change", "detail"],
              [(c["column"], c["change"], c.get("type") or f"{c['from']} → {c['to']}") for c in changes["schema"]]
              or [("", "none", "")])
        table("statistics changed", ["column", "statistic", "from", "to"],
              [(col, stat + (" (approximate)" if ft.get("approximate") else ""), ft["from"], ft["to"])
               for col, stats in changes["columns"].items() for stat, ft in stats.items()])

    show(changes, as_json, render)


@app.command("profile")
@served
def profile(
    ctx: typer.Context,
    dataset: str = typer.Argument(..., metavar="USECASE@N"),
    html: Path = typer.Option(None, "--html", help="Write the profile as an HTML page here."),
    png: Path = typer.Option(None, "--png", help="Write the histograms as a PNG image here."),
    as_json: bool = JsonOption,
) -> None:
    """A version's stored profile; its histograms as PNG or HTML."""
    from valueloop.data import plots

    v = _visible(ctx, dataset)
    title = f"{v.usecase}@{v.version}: {v.row_count:,} rows"
    if png is not None:
        png.write_bytes(plots.png(v.profile, title))
    if html is not None:
        html.write_text(plots.page(v.profile, title))
    show(v.profile, as_json, lambda: _render_profile(v))

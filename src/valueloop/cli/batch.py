"""``valueloop batch``: score a dataset with a use case's model, in process or on Dask."""

from __future__ import annotations

import time

import typer

from valueloop.cli._common import JsonOption, actor, console, parse_options, show


def batch(
    ctx: typer.Context,
    usecase: str = typer.Argument(..., help="The use case whose model scores."),
    input: str = typer.Option(
        ..., "--input", "-i",
        help="USECASE@N or USECASE@latest (a dataset version), a .parquet/.csv file or Parquet "
             "directory, delta:PATH, or sql:URL::QUERY.",
    ),
    output: str = typer.Option(
        ..., "--output", "-o", help="PATH.parquet (a Parquet dataset directory), PATH.csv, PATH.delta or delta:PATH."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    resume: bool = typer.Option(
        False, "--resume", help="Finish the last unfinished job into this output, keeping its finished parts."
    ),
    batch_size: int = typer.Option(65_536, "--batch-size", help="Rows scored at once (sets the memory)."),
    part_rows: int = typer.Option(1_048_576, "--part-rows", help="Rows per committed part (the unit of resume)."),
    dask: str = typer.Option(
        None, "--dask", help="Score on a Dask cluster: its scheduler address, or local:N worker processes."
    ),
    model: str = typer.Option("champion", "--model", "-m", help="An alias (champion, challenger) or a version."),
    id_column: str = typer.Option(None, "--id", help="The input's id column (default: declared or first *_id)."),
    as_json: bool = JsonOption,
) -> None:
    """Score INPUT into OUTPUT: each row's id, prediction (and probability), model version, time.

    The output appears whole when the job succeeds, never half-written; after a crash, --resume
    finishes the job without redoing its committed parts.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from valueloop.config import load_settings
    from valueloop.deploy.batch import BatchOptions, run_batch

    options = parse_options(BatchOptions, model=model, batch_size=batch_size, part_rows=part_rows,
                            overwrite=overwrite, resume=resume, dask=dask, id_column=id_column)
    started = time.perf_counter()
    with Progress(TextColumn(f"scoring {usecase}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("rows"), TimeRemainingColumn(), console=console(), transient=True,
                  disable=as_json) as bar:
        task = bar.add_task("score", total=None)
        job = run_batch(load_settings(), actor(ctx), usecase, input, output, options,
                        progress=lambda done, total: bar.update(task, completed=done, total=total))
    seconds = time.perf_counter() - started

    def render() -> None:
        console().print(
            f"batch job [bold]{job.id}[/bold]: {job.row_count:,} rows scored by {usecase} "
            f"v{job.model_version} ({job.executor}) into {job.output} ({job.output_format}) in "
            f"{seconds:.1f} s, {job.row_count / max(seconds, 1e-9):,.0f} rows/s")

    show(job, as_json, render)

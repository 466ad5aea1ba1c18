"""Batch scoring on the object store: input and output as s3:// URLs on a real S3-compatible
server (moto's), the same rows as on local disk; other schemes refused, never taken for a folder."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from valueloop.config import Settings
from valueloop.deploy.batch import BatchOptions, run_batch
from valueloop.storage import Location


def _scores(table) -> list:  # type: ignore[no-untyped-def]
    return table.drop_columns(["scored_at"]).sort_by("customer_id").to_pylist()


def test_batch_reads_and_writes_s3_as_it_does_local_disk(settings: Settings, champion: str, churn_parquet: Path,
                                                         s3_bucket: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from deltalake import DeltaTable

    monkeypatch.chdir(tmp_path)
    bucket = Location.parse(s3_bucket, "bucket")
    pafs.copy_files(str(churn_parquet), f"{bucket.path}/in/customers.parquet",
                    source_filesystem=pafs.LocalFileSystem(), destination_filesystem=bucket.filesystem)
    options = BatchOptions(part_rows=700)
    run_batch(settings, "devon", champion, str(churn_parquet), str(tmp_path / "local.parquet"), options)
    expected = _scores(pq.read_table(tmp_path / "local.parquet"))

    source = f"{s3_bucket}/in/customers.parquet"
    for output in ("scores.parquet", "scores.csv", "scores.delta"):
        job = run_batch(settings, "devon", champion, source, f"{s3_bucket}/out/{output}", options)
        assert job.status == "succeeded" and job.output == f"{s3_bucket}/out/{output}"
    with bucket.filesystem.open_input_file(f"{bucket.path}/out/scores.parquet") as f:
        assert _scores(pq.read_table(f)) == expected
    with bucket.filesystem.open_input_stream(f"{bucket.path}/out/scores.csv") as f:
        as_text = pacsv.ConvertOptions(column_types={"model_version": "string"})
        assert _scores(pacsv.read_csv(f, convert_options=as_text)) == expected
    delta = Location.parse(f"{s3_bucket}/out/scores.delta", "t")
    assert _scores(DeltaTable(delta.uri, storage_options=delta.storage_options()).to_pyarrow_table()) == expected

    again = run_batch(settings, "devon", champion, source, f"{s3_bucket}/out/scores.parquet",
                      BatchOptions(part_rows=700, overwrite=True))
    assert again.status == "succeeded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "input", "local.parquet"], "no folder s3:"
    assert not list((settings.home / "batch").glob("staging/*")), "staging is removed after the upload"


def test_unsupported_schemes_are_refused_naming_the_supported_ones(run_cli, tmp_path: Path) -> None:
    from valueloop.config import load_settings

    settings = load_settings({"VALUELOOP_HOME": str(tmp_path / "home")})  # refused before any lookup
    here = tmp_path / "here"
    here.mkdir()
    churn_parquet = tmp_path / "customers.parquet"
    for output in ("s3://", "gs://bucket/scores.parquet", "abfs://c/scores.parquet", "http://h/scores.parquet"):
        done = run_cli(settings, "batch", "churn", "--input", str(churn_parquet), "--output", output,
                       as_user="devon", cwd=here)
        assert done.returncode == 2, (output, done.stdout, done.stderr)
        assert f"--output {output!r}" in done.stderr and "s3://BUCKET" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    refused = run_cli(settings, "batch", "churn", "--input", "gs://bucket/in.parquet", "--output", "x.parquet",
                      as_user="devon", cwd=here)
    assert refused.returncode == 2 and "the scheme gs:// is not supported" in refused.stderr, refused.stderr
    assert list(here.iterdir()) == [], "no folder named after a scheme"

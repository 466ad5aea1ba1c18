"""Batch scoring: every row scored once with its lineage, resume after SIGKILL, Dask, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from valueloop.config import Settings
from valueloop.deploy.batch import BatchOptions, list_jobs, run_batch


def _rows(path: Path, key: str = "customer_id") -> pa.Table:
    """The output without its scoring times, sorted by id: what two runs must agree on."""
    if path.suffix == ".csv":
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(path)
    elif path.suffix == ".delta":
        from deltalake import DeltaTable

        table = DeltaTable(str(path)).to_pyarrow_table()
    else:
        table = pq.read_table(path)
    return table.drop_columns(["scored_at"]).sort_by(key)


def _big_input(settings: Settings, path: Path, copies: int) -> Path:
    """The newest dataset version repeated with fresh customer ids: enough rows to kill a job mid-run."""
    from valueloop.data import read_version
    from valueloop.store import session

    with session(settings) as s:
        base = read_version(s, "churn")
    with pq.ParquetWriter(path, base.schema) as writer:
        for i in range(copies):
            ids = pc.add(base["customer_id"], i * 10_000_000)
            writer.write_table(base.set_column(base.schema.get_field_index("customer_id"), "customer_id", ids))
    return path


def test_every_row_is_scored_once_by_the_champion_with_lineage(settings: Settings, champion: str,
                                                               churn_parquet: Path, tmp_path: Path) -> None:
    from valueloop.learn.registry import load_model
    from valueloop.outcomes.audit import events
    from valueloop.store import session

    out = tmp_path / "scores.parquet"
    seen: list[tuple[int, int]] = []
    job = run_batch(settings, "devon", champion, "churn@latest", str(out),
                    BatchOptions(batch_size=256, part_rows=500), progress=lambda d, t: seen.append((d, t)))

    source = pq.read_table(churn_parquet)  # the newest dataset version, which churn@latest names
    rows, parts = source.num_rows, -(-source.num_rows // 500)
    assert (job.status, job.row_count, job.parts_total, job.parts_done) == ("succeeded", rows, parts, parts)
    assert parts > 1 and job.model_version == "1" and job.model_ref == "champion"
    assert seen[-1] == (rows, rows)
    scored = pq.read_table(out)
    assert scored.column_names == ["customer_id", "prediction", "probability", "model_version", "scored_at"]
    assert scored["customer_id"].to_pylist() == source["customer_id"].to_pylist()
    with session(settings) as s:
        model = load_model(s, settings, champion, 1)
    signature = model.metadata.get_input_schema().inputs
    frame = source.select([c.name for c in signature]).to_pandas()
    expected = model.predict(frame.astype({c.name: c.type.to_numpy() for c in signature}))
    np.testing.assert_allclose(scored["probability"].to_numpy(), np.asarray(expected)[:, 1], rtol=1e-9)
    assert set(scored["model_version"].to_pylist()) == {"1"}
    assert not list(tmp_path.glob(".scores.parquet.valueloop-*")), "staging is removed after publishing"

    [listed] = list_jobs(settings, "oscar", champion)
    assert listed.input_fingerprint == job.input_fingerprint and listed.output == str(out)
    with session(settings) as s:
        actions = [e.action for e in events(s, usecase=champion, action="batch.")]
    assert actions == ["batch.start", "batch.finish"]


def test_a_job_killed_mid_run_resumes_to_exactly_the_rows_of_an_uninterrupted_run(
        settings: Settings, champion: str, tmp_path: Path) -> None:
    source = _big_input(settings, tmp_path / "big.parquet", copies=150)  # 180,000 rows
    whole = tmp_path / "whole.parquet"
    run_batch(settings, "devon", champion, str(source), str(whole), BatchOptions(part_rows=6000))

    out = tmp_path / "resumed.parquet"
    args = [sys.executable, "-m", "valueloop", "batch", champion, "--input", str(source),
            "--output", str(out), "--part-rows", "6000", "--batch-size", "500"]
    env = {**os.environ, **settings.as_env(), "VALUELOOP_USER": "devon"}
    job = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    manifests: list[Path] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        manifests = list(tmp_path.glob(".resumed.parquet.valueloop-*/manifest.json"))
        if manifests and len(json.loads(manifests[0].read_text())["parts"]) >= 3:
            break
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, "the job was killed before it finished"
    assert not out.exists(), "nothing is published before the job completes"
    committed = json.loads(manifests[0].read_text())["parts"]
    assert 3 <= len(committed) < 180_000 // 6000, "the job was killed with parts done and parts to do"
    killed_at = time.time()

    resumed = subprocess.run([*args, "--resume", "--json"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["row_count"] == 180_000
    assert _rows(out).equals(_rows(whole))
    scored_at = pq.read_table(out)["scored_at"].to_numpy().astype("datetime64[us]").astype(float) / 1e6
    first_parts = scored_at[: 6000 * len(committed)]
    assert (first_parts < killed_at).all(), "the committed parts were not scored again"
    assert not list(tmp_path.glob(".resumed.parquet.valueloop-*"))


def test_dask_workers_and_in_process_give_identical_outputs(settings: Settings, champion: str,
                                                          churn_parquet: Path, tmp_path: Path) -> None:
    local, dask = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    run_batch(settings, "devon", champion, str(churn_parquet), str(local), BatchOptions(part_rows=300))
    job = run_batch(settings, "oscar", champion, str(churn_parquet), str(dask),
                    BatchOptions(part_rows=300, dask="local:2"))
    assert job.executor == "dask local:2" and job.parts_done == 4
    assert _rows(dask).equals(_rows(local))
    assert pq.read_table(dask)["customer_id"].to_pylist() == pq.read_table(local)["customer_id"].to_pylist()


def test_sql_and_csv_inputs_and_csv_and_delta_outputs_agree(settings: Settings, champion: str,
                                                             churn_parquet: Path, tmp_path: Path) -> None:
    """Parquet, SQL and CSV inputs (streamed page by page, materialized, scanned) score alike."""
    import sqlite3

    import pyarrow.csv as pacsv

    frame = pq.read_table(churn_parquet).to_pandas()
    with sqlite3.connect(tmp_path / "crm.db") as conn:
        frame.to_sql("customers", conn, index=False)
    pacsv.write_csv(pq.read_table(churn_parquet), tmp_path / "customers.csv")
    reference = tmp_path / "ref.parquet"
    run_batch(settings, "devon", champion, str(churn_parquet), str(reference))
    sql = f"sql:sqlite:///{tmp_path / 'crm.db'}::SELECT * FROM customers"
    run_batch(settings, "devon", champion, sql, str(tmp_path / "out.csv"))
    run_batch(settings, "devon", champion, str(churn_parquet), f"delta:{tmp_path / 'out.delta'}")
    run_batch(settings, "devon", champion, str(tmp_path / "customers.csv"), str(tmp_path / "from-csv.parquet"))
    expected = _rows(reference)
    assert _rows(tmp_path / "out.delta").equals(expected)
    scanned = _rows(tmp_path / "from-csv.parquet")
    assert scanned["customer_id"].to_pylist() == expected["customer_id"].to_pylist()
    np.testing.assert_allclose(scanned["probability"].to_numpy(), expected["probability"].to_numpy())
    from_csv = _rows(tmp_path / "out.csv")
    assert from_csv["customer_id"].to_pylist() == expected["customer_id"].to_pylist()
    np.testing.assert_allclose(from_csv["probability"].to_numpy(), expected["probability"].to_numpy())


def test_bad_input_is_refused_by_name_and_leaves_nothing_half_written(
        settings: Settings, champion: str, churn_parquet: Path, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "out.parquet"

    missing = run_cli(settings, "batch", champion, "--input", str(tmp_path / "nope.parquet"),
                      "--output", str(out), as_user="devon")
    assert missing.returncode == 2 and "nope.parquet" in missing.stderr and "no such file" in missing.stderr

    narrow = tmp_path / "narrow.parquet"
    pq.write_table(pq.read_table(churn_parquet).drop_columns(["tenure_months"]), narrow)
    mismatch = run_cli(settings, "batch", champion, "--input", str(narrow), "--output", str(out), as_user="devon")
    assert mismatch.returncode == 2 and "column 'tenure_months': missing" in mismatch.stderr

    typed = tmp_path / "typed.parquet"
    table = pq.read_table(churn_parquet)
    i = table.schema.get_field_index("monthly_charges")
    pq.write_table(table.set_column(i, "monthly_charges", table["monthly_charges"].cast(pa.string())), typed)
    wrong = run_cli(settings, "batch", champion, "--input", str(typed), "--output", str(out), as_user="devon")
    assert wrong.returncode == 2 and "column 'monthly_charges': string is not a number" in wrong.stderr

    unknown = run_cli(settings, "batch", champion, "--input", str(churn_parquet), "--output",
                      str(tmp_path / "out.xlsx"), as_user="devon")
    assert unknown.returncode == 2 and "unknown format .xlsx" in unknown.stderr

    denied = run_cli(settings, "batch", champion, "--input", str(churn_parquet), "--output", str(out),
                     as_user="ana")
    assert denied.returncode == 6 and "requires role developer or operations" in denied.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.parquet.valueloop-*"))
    assert "Traceback" not in missing.stderr + mismatch.stderr + wrong.stderr + denied.stderr

    out.write_bytes(b"keep me")
    exists = run_cli(settings, "batch", champion, "--input", str(churn_parquet), "--output", str(out),
                     as_user="devon")
    assert exists.returncode == 4 and "exists; pass --overwrite" in exists.stderr
    assert out.read_bytes() == b"keep me"
    replaced = run_cli(settings, "batch", champion, "--input", str(churn_parquet), "--output", str(out),
                       "--overwrite", as_user="devon")
    assert replaced.returncode == 0, replaced.stderr
    assert pq.read_table(out).num_rows == pq.read_table(churn_parquet).num_rows


def test_a_column_named_id_names_the_rows_as_training_took_it_for_an_identifier(
        settings: Settings, champion: str, churn_parquet: Path, tmp_path: Path) -> None:
    """Training leaves out `id` and `*_id` columns; batch named rows only by `*_id`, so an input
    whose key is `id` got row ordinals."""
    source = pq.read_table(churn_parquet)
    keyed = tmp_path / "keyed.parquet"
    pq.write_table(source.rename_columns(["id" if c == "customer_id" else c for c in source.column_names]), keyed)
    out = tmp_path / "scores.parquet"
    run_batch(settings, "devon", champion, str(keyed), str(out), BatchOptions())
    scored = pq.read_table(out)
    assert scored.column_names[0] == "id"
    assert scored["id"].to_pylist() == source["customer_id"].to_pylist()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_log_holds_exactly_the_scored_rows_of_batches_scored_side_by_side(
        settings: Settings, champion: str, churn_parquet: Path, tmp_path: Path) -> None:
    """Batches are scored a core each and written in order: 12 batches over 3 parts reach the
    output in the input's order, each row logged once with its own answer and features."""
    from valueloop.deploy.predlog import PredictionLog

    out = tmp_path / "scores.parquet"
    job = run_batch(settings, "devon", champion, str(churn_parquet), str(out),
                    BatchOptions(batch_size=100, part_rows=400))
    source, scored = pq.read_table(churn_parquet), pq.read_table(out)
    assert scored["customer_id"].to_pylist() == source["customer_id"].to_pylist()
    logged = PredictionLog(settings, champion).read().sort_by("request_id")
    assert logged.num_rows == scored.num_rows == 1200 and set(logged["source"].to_pylist()) == {"batch"}
    by_id = scored.append_column("request_id", pc.binary_join_element_wise(
        job.id, scored["customer_id"].cast(pa.string()), "/")).sort_by("request_id")
    assert logged["request_id"].equals(by_id["request_id"])
    assert logged["prediction"].equals(by_id["prediction"]) and logged["probability"].equals(by_id["probability"])
    named = source.append_column("request_id", pc.binary_join_element_wise(
        job.id, source["customer_id"].cast(pa.string()), "/")).sort_by("request_id")
    features = [c for c in logged.column_names if c in source.column_names]
    assert {"tenure_months", "monthly_charges"} <= set(features)
    for name in features:
        np.testing.assert_array_equal(logged[name].to_numpy(zero_copy_only=False),
                                      named[name].to_numpy(zero_copy_only=False))


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_prediction_log_that_cannot_be_written_fails_the_job_by_name_and_publishes_nothing(
        settings: Settings, champion: str, churn_parquet: Path, tmp_path: Path) -> None:
    import dataclasses

    from valueloop.errors import ValueloopError

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log's folder should be")
    out = tmp_path / "scores.parquet"
    with pytest.raises(ValueloopError, match=r"prediction log .*not-a-folder.*could not be written") as failed:
        run_batch(dataclasses.replace(settings, prediction_log=str(blocked)), "devon", champion,
                  str(churn_parquet), str(out), BatchOptions(batch_size=100, part_rows=400))
    assert "--resume" in str(failed.value)
    assert not out.exists()
    [job] = list_jobs(settings, "devon", champion)
    assert job.status == "failed" and "could not be written" in job.error and job.parts_done == 0


def test_each_scoring_thread_runs_its_model_on_one_openmp_thread_and_leaves_the_others_alone() -> None:
    """A batch per core, its model's OpenMP team limited to the scoring thread itself: the limit
    is per thread, so the caller (a server, the ceiling a benchmark measures) keeps its own."""
    import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP runtime
    from threadpoolctl import ThreadpoolController

    from valueloop.deploy.batch import _one_thread_each

    def openmp_threads() -> set[int]:
        return {lib["num_threads"] for lib in ThreadpoolController().info() if lib["user_api"] == "openmp"}

    before = openmp_threads()
    assert before and max(before) >= 1
    with _one_thread_each(2) as pool:
        inside = [pool.submit(openmp_threads).result() for _ in range(4)]
    assert inside == [{1}] * 4
    assert openmp_threads() == before


def test_what_waits_behind_a_failed_batch_is_never_run() -> None:
    """Scored batches wait in line for the writer; when one fails (its prediction log cannot be
    written), the batches behind it are not written after the job has failed."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from valueloop.deploy.batch import _in_order

    ran: list[int] = []
    second = threading.Event()

    def write(i: int) -> int:
        ran.append(i)
        if i == 0:
            raise OSError("the log cannot be written")
        second.wait(10)  # batch 1, if it started, holds the writer until the caller has stopped
        return i

    with ThreadPoolExecutor(1) as writer:
        with pytest.raises(OSError, match="cannot be written"):
            for _ in _in_order(writer, write, iter([(0,), (1,), (2,), (3,)]), 2):
                pass
        second.set()
    assert ran in ([0], [0, 1])  # batch 2 waited behind the failure and was never written

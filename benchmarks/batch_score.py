"""Batch scoring three ways, side by side, each in its own process; print rows/s, memory, ratios.

(a) the ceiling: the raw model's ``predict`` on the whole NumPy array already in memory;
(b) the usual glue: ``mlflow.pyfunc`` predict over pandas chunks read from the same Parquet file;
(c) ``valueloop batch`` through its service (``run_batch``): the model loaded through the Learn
phase's digest-verified loader, Arrow batches from Parquet, a Parquet output with ids,
probabilities, versions and times, the job's lineage; then again with a 4x smaller batch size,
for its peak memory. The model is a HistGradientBoostingClassifier on 20 features, logged to
MLflow and registered, accepted and promoted to champion through the Learn phase's services;
(d) the same model registered again with its trees compiled to native code (``model: compile:
true``: treelite and tl2cgen), its library's ``predict_proba`` on the whole array, and
(e) ``valueloop batch`` of that version. (c) is also run as one scoring thread with the model's own
OpenMP threads instead of a thread per core each with OpenMP on itself, to compare the two on the
same data and load (CPU s/1M).
Goals (issue 6): (c) at least 0.8x the rows/s of (a), at least 2x (b), memory set by the batch size;
(issue 19) (e) at least 3x the rows/s of (a).

    python benchmarks/batch_score.py                 # 10 million rows x 20 features
    python benchmarks/batch_score.py --rows 2000000  # a quicker run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peak import peak_mib  # this folder is on sys.path when a benchmark runs

FEATURES = [f"f{i:02d}" for i in range(20)]
CHUNK = 1_000_000


def _features(rows: int, seed: int) -> Any:
    import numpy as np

    return np.random.default_rng(seed).normal(size=(rows, len(FEATURES)))


def _labels(X: Any, seed: int) -> Any:
    import numpy as np

    logit = X[:, :5] @ np.array([1.0, -0.8, 0.6, 0.4, -0.3]) + 0.5 * X[:, 5] * X[:, 6] - 0.4 * X[:, 7] ** 2
    return (np.random.default_rng(seed).random(len(X)) < 1 / (1 + np.exp(-logit))).astype(int)


def make_data(path: Path, rows: int) -> None:
    """``rows`` x 20 float features plus an id, written in chunks (memory of one chunk)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("row_id", pa.int64()), *[(f, pa.float64()) for f in FEATURES]])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            X = _features(n, seed=start)
            writer.write_table(pa.table([pa.array(np.arange(start, start + n)), *X.T], schema=schema))


def make_home(home: Path) -> None:
    """A valueloop home with the demo's people, the churn use case and the benchmark's model as
    its champion (registered, accepted and promoted through the Learn services)."""
    import io

    import mlflow
    import pandas as pd
    from rich.console import Console
    from sklearn.ensemble import HistGradientBoostingClassifier

    from valueloop.config import load_settings
    from valueloop.demo import DemoContext
    from valueloop.demo import outcomes as chapter
    from valueloop.learn import tracking
    from valueloop.learn.registry import accept, promote, register
    from valueloop.learn.tables import TrainingRun
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.store import session

    settings = load_settings({"VALUELOOP_HOME": str(home)})
    (home / "workspace").mkdir(parents=True)
    chapter.run(DemoContext(settings=settings, workspace=home / "workspace", console=Console(file=io.StringIO())))
    X = pd.DataFrame(_features(200_000, seed=99), columns=FEATURES)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X, _labels(X.to_numpy(), 1))
    with mlflow.start_run(experiment_id=tracking.experiment(settings, "churn")) as run:
        info = tracking.log_model(model, "lightgbm", X.head(5), "classification", None)
    with session(settings) as s:
        trained = TrainingRun(run_id=run.info.run_id, dataset_version=0, dpia_version=1)
        version = register(s, settings, "dana", get_usecase(s, "churn"), trained, info.model_uri, []).version
    with session(settings) as s:
        accept(s, "olivia", "churn", version, accepted=True, comment="benchmark model")
    with session(settings) as s:
        promote(s, settings, "dana", "churn", version, "champion")
    with session(settings) as s:  # version 2: the same model, its trees compiled
        register(s, settings, "dana", get_usecase(s, "churn"), trained, info.model_uri, [], compile=True)


def run_ceiling(home: Path, data: Path, compiled: bool = False) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from valueloop.config import load_settings
    from valueloop.deploy.model import load_ref
    from valueloop.learn.registry import load_model
    from valueloop.store import session

    settings = load_settings({"VALUELOOP_HOME": str(home)})
    with session(settings) as s:
        model = load_ref(s, settings, "devon", "churn", "2").estimator if compiled else \
            load_model(s, settings, "churn", "champion").get_raw_model()
    table = pq.read_table(data, columns=FEATURES)
    X = table.to_pandas().to_numpy()
    del table
    started, cpu = time.perf_counter(), time.process_time()
    predictions = model.predict_proba(X) if compiled else model.predict(X)
    seconds = time.perf_counter() - started
    return {"rows": len(predictions), "seconds": seconds, "cpu_seconds": time.process_time() - cpu}


def run_pyfunc(home: Path, data: Path, batch_size: int) -> dict[str, Any]:
    import mlflow.pyfunc
    import numpy as np
    import pyarrow.parquet as pq

    from valueloop.config import load_settings

    settings = load_settings({"VALUELOOP_HOME": str(home)})
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    model = mlflow.pyfunc.load_model("models:/churn@champion")
    started, cpu = time.perf_counter(), time.process_time()
    parts = [np.asarray(model.predict(batch.to_pandas()))
             for batch in pq.ParquetFile(data).iter_batches(batch_size=batch_size, columns=FEATURES)]
    seconds = time.perf_counter() - started
    return {"rows": sum(len(p) for p in parts), "seconds": seconds, "cpu_seconds": time.process_time() - cpu}


def run_valueloop(home: Path, data: Path, batch_size: int, out: Path, model: str = "champion",
                  model_threads: bool = False) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from valueloop.config import load_settings
    from valueloop.deploy import batch
    from valueloop.deploy.batch import BatchOptions, run_batch

    if model_threads:  # the alternative: one batch at a time on the model's own OpenMP threads
        batch._scorers = lambda: 1
        batch._one_thread_each = lambda scorers: ThreadPoolExecutor(scorers, thread_name_prefix="batch-score")

    settings = load_settings({"VALUELOOP_HOME": str(home)})
    begun = time.perf_counter()
    started: list[float] = []  # the first progress call: model loaded and verified, input opened
    cpu: list[float] = []

    loaded: list[float] = []  # peak memory then: libraries and model, before any row

    def progress(done: int, total: int) -> None:
        if not started:
            started.append(time.perf_counter())
            cpu.append(time.process_time())
            loaded.append(peak_mib())

    job = run_batch(settings, "devon", "churn", str(data), str(out), BatchOptions(batch_size=batch_size, model=model),
                    progress=progress)
    ended = time.perf_counter()
    return {"rows": job.row_count, "seconds": ended - started[0], "total_seconds": ended - begun,
            "loaded_mb": loaded[0], "cpu_seconds": time.process_time() - cpu[0]}


def child(args: argparse.Namespace) -> None:
    home, data = Path(args.home), Path(args.data)
    if args.run in ("ceiling", "compiled"):
        result = run_ceiling(home, data, compiled=args.run == "compiled")
    elif args.run == "pyfunc":
        result = run_pyfunc(home, data, args.batch_size)
    else:
        result = run_valueloop(home, data, args.batch_size, Path(args.out),
                               "2" if args.run == "valueloop-compiled" else "champion",
                               model_threads=args.run == "valueloop-model-threads")
    print(json.dumps(result | {"peak_mb": peak_mib()}))


def measure(name: str, home: Path, data: Path, batch_size: int, out: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--run", name, "--home", str(home), "--data", str(data),
                           "--batch-size", str(batch_size), "--out", str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"rows_per_s": result["rows"] / result["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch-size", type=int, default=65_536)
    parser.add_argument("--run", choices=["ceiling", "pyfunc", "valueloop", "compiled", "valueloop-compiled",
                                          "valueloop-model-threads"])
    parser.add_argument("--home")
    parser.add_argument("--data")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.run:
        child(args)
        return
    root = Path(tempfile.mkdtemp(prefix="valueloop-bench-batch-"))
    try:
        home, data = root / "home", root / "input.parquet"
        started = time.perf_counter()
        make_data(data, args.rows)
        make_home(home)
        print(f"{args.rows:,} rows x {len(FEATURES)} features ({data.stat().st_size / 2**20:,.0f} MiB Parquet), "
              f"HistGradientBoostingClassifier(max_iter=100); set up in {time.perf_counter() - started:.0f} s")
        small = max(1, args.batch_size // 4)
        runs = {
            "(a) ceiling: model.predict, whole array": measure("ceiling", home, data, args.batch_size, root / "a"),
            f"(b) mlflow.pyfunc over pandas chunks of {args.batch_size:,}":
                measure("pyfunc", home, data, args.batch_size, root / "b"),
            f"(c) valueloop batch, batch size {args.batch_size:,}":
                measure("valueloop", home, data, args.batch_size, root / "c.parquet"),
            f"(c) valueloop batch, batch size {small:,}": measure("valueloop", home, data, small, root / "d.parquet"),
            f"(c) batch size {args.batch_size:,}, on the model's OpenMP threads": measure(
                "valueloop-model-threads", home, data, args.batch_size, root / "g.parquet"),
            "(d) compiled trees: predict_proba, whole array": measure("compiled", home, data, args.batch_size, root / "e"),
            f"(e) valueloop batch, compiled, batch size {args.batch_size:,}":
                measure("valueloop-compiled", home, data, args.batch_size, root / "f.parquet"),
        }
        print(f"{'':58} {'rows/s':>12} {'seconds':>9} {'CPU s/1M':>9} {'peak RSS':>10}")
        for name, r in runs.items():
            print(f"{name:58} {r['rows_per_s']:>12,.0f} {r['seconds']:>9.1f} "
                  f"{r['cpu_seconds'] / r['rows'] * 1e6:>9.2f} {r['peak_mb']:>7,.0f} MiB")
        print("CPU s/1M: CPU seconds of the process per million rows over the same window, every thread "
              "(OpenMP's spinning at its barriers included): what load on other cores does not change much")
        print("valueloop's seconds run from the input opened to the output published; with loading and "
              "verifying the model: " + ", ".join(f"{r['total_seconds']:.1f} s" for r in runs.values()
                                                   if "total_seconds" in r))
        a, b, c, d, threads, compiled, e = runs.values()
        print(f"valueloop / ceiling: {c['rows_per_s'] / a['rows_per_s']:.2f}x  (goal >= 0.8x)")
        print(f"a thread per core, each with OpenMP on itself / one batch on the model's OpenMP threads: "
              f"{c['rows_per_s'] / threads['rows_per_s']:.2f}x rows/s, "
              f"{c['cpu_seconds'] / c['rows'] * 1e6:.2f} / {threads['cpu_seconds'] / threads['rows'] * 1e6:.2f} CPU s/1M")
        print(f"valueloop / mlflow.pyfunc: {c['rows_per_s'] / b['rows_per_s']:.2f}x  (goal >= 2x)")
        print(f"valueloop compiled / ceiling: {e['rows_per_s'] / a['rows_per_s']:.2f}x  (goal >= 3x); the compiled "
              f"trees alone: {compiled['rows_per_s'] / a['rows_per_s']:.2f}x")
        print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        print(f"valueloop peak memory: {c['peak_mb']:,.0f} MiB at batch {args.batch_size:,}, {d['peak_mb']:,.0f} MiB "
              f"at batch {small:,} (of which {c['loaded_mb']:,.0f} MiB before the first row: libraries and "
              f"model); the ceiling holds the whole input: {a['peak_mb']:,.0f} MiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

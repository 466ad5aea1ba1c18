"""Drift benchmark: valueloop against Evidently's DataDriftPreset, side by side in one run.

The script generates 1 million reference and 1 million current rows of 20 columns (14 numeric,
6 categorical; 7 columns drift for real: 5 numeric, 2 categorical) to Parquet files under
benchmarks/.data/drift/, then runs each method in its own subprocess, so that the peak resident
memory each reports is its own: the high-water mark of its own address space (VmHWM). Not
``ru_maxrss``: a child started with vfork and exec keeps its parent's peak in it, so the same run
reported 416 MiB when the parent had just generated the data and 228 MiB when the files existed.
valueloop streams both files one column at a time (two passes over the reference for its bins,
one over the current), handing Arrow's freed pages back after each column; Evidently reads both
into pandas as its API requires. Both use the same methods and thresholds: normalized Wasserstein 0.1
for numeric columns and Jensen-Shannon 0.1 for categorical ones (also both tools' defaults above
1000 rows). It prints wall time, peak RSS, the ratios (goal: at least 20x faster, at least 5x less
memory, raised to 8x) and whether the same set of columns is flagged; then valueloop alone at 1M, 5M and 10M
rows to show time growing linearly and memory staying flat.

Evidently is not a dependency of valueloop and is not in its lock file: on first run the script
creates a separate virtual environment, benchmarks/.venv-peers (``python -m venv``), installs
``evidently==0.7.23`` and ``pandas<3`` (Evidently 0.7 does not import with pandas 3) into it with
pip, and runs Evidently with that environment's Python. Later runs reuse it.

    python benchmarks/drift.py                      # the whole comparison (10 to 20 minutes here)
    python benchmarks/drift.py --scale 1000000      # fewer scaling points
    python benchmarks/drift.py --skip-evidently     # valueloop alone
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from peak import peak_mib  # this folder is on sys.path when a benchmark runs

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data" / "drift"
PEERS = ROOT / ".venv-peers"
PEER_PACKAGES = ["evidently==0.7.23", "pandas<3"]
NUMERIC = [f"num_{i}" for i in range(14)]
CATEGORICAL = [f"cat_{i}" for i in range(6)]
DRIFTED = {"num_0", "num_1", "num_2", "num_3", "num_4", "cat_0", "cat_1"}
CHUNK = 1_000_000

EVIDENTLY = r"""
import json, sys, time
sys.path.insert(0, sys.argv[5])
from peak import peak_mib  # the same measure as valueloop's
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

ref_path, cur_path, numeric, categorical = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
report = Report([DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon",
                                 num_threshold=0.1, cat_threshold=0.1)])
tiny = pd.DataFrame({c: [1.0, 2.0, 3.0] for c in numeric} | {c: ["a", "b", "a"] for c in categorical})
report.run(Dataset.from_pandas(tiny, data_definition=definition),
           Dataset.from_pandas(tiny, data_definition=definition))  # a warm-up, as valueloop's
start, cpu = time.perf_counter(), time.process_time()
reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
snapshot = report.run(Dataset.from_pandas(current, data_definition=definition),
                      Dataset.from_pandas(reference, data_definition=definition))
flagged = sorted(m["config"]["column"] for m in snapshot.dict()["metrics"]
                 if m["config"]["type"].endswith("ValueDrift") and m["value"] >= m["config"]["threshold"])
print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                  "flagged": flagged,
                  "peak_rss_mib": peak_mib()}))
"""


def _chunk(rows: int, seed: int, drifted: bool):  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    shift = 1.0 if drifted else 0.0
    columns = {
        "num_0": rng.normal(50 + 5 * shift, 10, rows),            # mean +0.5 sd
        "num_1": rng.lognormal(3, 0.5 + 0.25 * shift, rows),       # wider
        "num_2": rng.uniform(0 + 20 * shift, 100 + 20 * shift, rows),
        "num_3": rng.exponential(5 + 3 * shift, rows),
        "num_4": rng.normal(0 + 0.3 * shift, 1, rows),             # mean +0.3 sd
    }
    for i in range(5, 12):
        columns[f"num_{i}"] = [rng.normal(100, 15, rows), rng.gamma(2, 2, rows), rng.beta(2, 5, rows)][i % 3]
    columns["num_12"] = rng.poisson(3, rows)
    columns["num_13"] = rng.integers(18, 90, rows)
    for i, size in enumerate((4, 8, 12, 20, 30, 50)):
        weights = 1 / np.arange(1, size + 1)
        if drifted and f"cat_{i}" in DRIFTED:
            weights = weights[::-1]
        values = np.array([f"c{j:02d}" for j in range(size)])
        columns[f"cat_{i}"] = values[rng.choice(size, rows, p=weights / weights.sum())]
    return pa.table({name: pa.array(data) for name, data in columns.items()})


def dataset(rows: int, kind: str) -> Path:
    """The Parquet file of ``rows`` rows, made once; 'current' drifts in the DRIFTED columns."""
    import pyarrow.parquet as pq

    path = DATA / f"{kind}_{rows}.parquet"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    writer = None
    for offset in range(0, rows, CHUNK):
        table = _chunk(min(CHUNK, rows - offset), seed=(1 if kind == "reference" else 2) * 1000 + offset // CHUNK,
                       drifted=kind == "current")
        writer = writer or pq.ParquetWriter(partial, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=256_000)
    assert writer is not None
    writer.close()
    partial.rename(path)
    return path


def valueloop_child(reference_path: str, current_path: str) -> None:
    """What runs in the valueloop subprocess: reference bins, current counts, drift per column.
    The clock starts after the imports, as Evidently's does."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from valueloop.operate.drift import dataset_drift
    from valueloop.operate.summary import build_reference, summarize

    def batches(path: str, columns: list[str] | None = None):  # type: ignore[no-untyped-def]
        """Stream the file one column at a time, text columns as their dictionary codes: the
        summaries are per column, so only one column's pages are decoded at once (all twenty
        together held 36 MiB of Arrow buffers). After each column the pages Arrow's allocator
        (mimalloc) freed go back to the system; it kept 15-25 MiB of them otherwise."""
        text = [f.name for f in pq.read_schema(path) if f.type in (pa.string(), pa.large_string())]
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 18, read_dictionary=text)
        for name in columns or parquet.schema_arrow.names:
            yield from parquet.iter_batches(columns=[name], use_threads=False)
            pa.default_memory_pool().release_unused()

    # the warm-up's data: the reference's first 2,000 rows, over 1,000 so that the defaults pick
    # the methods of the full run (Wasserstein, Jensen-Shannon; KS would load scipy.stats, 34 MiB);
    # from_arrays, as pa.table or pa.array would import pandas
    names = pq.read_schema(reference_path).names
    tiny = pa.Table.from_arrays([next(batches(reference_path, [name])).column(0).slice(0, 2000) for name in names],
                                names=names)
    dataset_drift(build_reference(lambda columns=None: tiny.select(columns or tiny.column_names).to_batches()),
                  summarize(tiny.to_batches(), build_reference(lambda columns=None: tiny.to_batches())))
    start, cpu = time.perf_counter(), time.process_time()  # after a warm-up that loads the lazy imports
    reference = build_reference(lambda columns=None: batches(reference_path, columns))
    current = summarize(batches(current_path), reference)
    result = dataset_drift(reference, current)
    methods = sorted({(c.kind, c.method, c.threshold) for c in result.columns.values()})
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                      "flagged": result.drifted, "methods": methods,
                      "peak_rss_mib": peak_mib()}))


def _run(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_python() -> Path:
    python = PEERS / "bin" / "python"
    if not python.exists():
        print(f"creating {PEERS} with {', '.join(PEER_PACKAGES)} (first run only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    check = subprocess.run([str(python), "-c", "import evidently"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def valueloop_run(reference: Path, current: Path) -> dict:
    return _run([sys.executable, __file__, "--child", str(reference), str(current)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scale", type=int, nargs="*", default=[1_000_000, 5_000_000, 10_000_000])
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("REFERENCE", "CURRENT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        valueloop_child(*args.child)
        return

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    reference, current = dataset(args.rows, "reference"), dataset(args.rows, "current")
    print(f"data: {args.rows:,} reference and {args.rows:,} current rows, {len(NUMERIC)} numeric and "
          f"{len(CATEGORICAL)} categorical columns, {len(DRIFTED)} drifted: {', '.join(sorted(DRIFTED))}")
    ours = valueloop_run(reference, current)
    print(f"valueloop : {ours['seconds']:8.2f} s ({ours['cpu_seconds']:.2f} s CPU)  peak RSS {ours['peak_rss_mib']:8.1f} MiB  "
          f"flagged {len(ours['flagged'])}: {', '.join(ours['flagged'])}")
    print(f"            methods: {', '.join(f'{k} {m} {t:g}' for k, m, t in ours['methods'])}")
    if not args.skip_evidently:
        python = peer_python()
        version = subprocess.run([str(python), "-c", "import evidently; print(evidently.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
        theirs = _run([str(python), "-c", EVIDENTLY, str(reference), str(current), ",".join(NUMERIC),
                       ",".join(CATEGORICAL), str(ROOT)])
        print(f"evidently : {theirs['seconds']:8.2f} s ({theirs['cpu_seconds']:.2f} s CPU)  peak RSS {theirs['peak_rss_mib']:8.1f} MiB  "
              f"flagged {len(theirs['flagged'])}: {', '.join(theirs['flagged'])}  (evidently {version}, "
              "DataDriftPreset wasserstein 0.1 / jensenshannon 0.1)")
        speed = theirs["seconds"] / ours["seconds"]
        cpu = theirs["cpu_seconds"] / ours["cpu_seconds"]
        memory = theirs["peak_rss_mib"] / ours["peak_rss_mib"]
        print(f"ratio     : {speed:.1f}x faster in wall time, {cpu:.1f}x in CPU time (goal >= 20x: "
              f"{'met' if speed >= 20 else 'MISSED'}), {memory:.1f}x less peak memory (goal >= 5x: "
              f"{'met' if memory >= 5 else 'MISSED'}; raised goal >= 8x: {'met' if memory >= 8 else 'MISSED'})")
        same = ours["flagged"] == theirs["flagged"]
        print(f"same columns flagged: {'yes' if same else 'NO'}; expected (the drifted ones): "
              f"{'yes' if set(ours['flagged']) == DRIFTED else 'NO'}")
    print("valueloop alone, reference and current of N rows each:")
    for rows in args.scale:
        result = valueloop_run(dataset(rows, "reference"), dataset(rows, "current"))
        print(f"  {rows:>11,} rows: {result['seconds']:8.2f} s ({result['cpu_seconds']:.2f} s CPU)  "
              f"peak RSS {result['peak_rss_mib']:8.1f} MiB  "
              f"{result['seconds'] / rows * 1e6:6.2f} s per million rows  flagged {len(result['flagged'])}")


if __name__ == "__main__":
    main()

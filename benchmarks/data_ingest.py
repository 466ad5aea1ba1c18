"""Ingest a large CSV three ways, side by side, each in its own process; print times, memory,
ratios, and how valueloop's time divides among its steps.

(a) the floor: ``pyarrow.csv`` read plus one Parquet write; (a') the floor with the one piece
of valueloop's work that the DPIA requires and no implementation can skip, the keyed pseudonym of
the e-mail column (HMAC-SHA256, in DuckDB as valueloop computes it): what it adds to the floor is
a bound under any ingest that pseudonymizes; (b) the usual glue: pandas
``read_csv``, the same checks in pandas, ``to_parquet``; (c) valueloop's ingest through its
public service: privacy treatments, quality checks, a Delta version and its profile. Then
valueloop again on a file twice as large, for its peak memory. Goals: (c) within 1.2x of (a) at
10 million rows (issue 19), at least 3x faster than (b) (issue 3), and peak memory that does not
grow with the file. Each of valueloop's steps is shown with its wall and CPU seconds: checking
and profiling is work the floor does not do, and so is the pseudonymization within reading,
treating and transforming.

    python benchmarks/data_ingest.py              # 10 million rows, 20 columns
    python benchmarks/data_ingest.py --rows 200000  # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from peak import peak_mib  # this folder is on sys.path when a benchmark runs

CHUNK = 1_000_000
CONTRACTS = ["month-to-month", "one_year", "two_year"]
PAYMENTS = ["card", "direct_debit", "invoice"]
REGIONS = ["north", "south", "east", "west", "central"]


def _chunk(start: int, rows: int, seed: int) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)

    def text(numbers: Any) -> Any:  # int32 -> string is the fast cast in pyarrow
        return pc.cast(pa.array(numbers.astype(np.int32)), pa.string())

    def pick(values: list[str]) -> Any:
        return pa.array(values).take(pa.array(rng.integers(0, len(values), rows)))

    ids = np.arange(start, start + rows)
    digits = text(ids)
    columns = {
        "customer_id": pa.array(ids),
        "name": pc.binary_join_element_wise("Customer ", digits, ""),
        "email": pc.binary_join_element_wise("user", digits, "@example.com", ""),
        "birth_date": pa.array(rng.integers(-20000, 3000, rows).astype(np.int32)).cast(pa.date32()),
        "postcode": pc.binary_join_element_wise(text(rng.integers(1000, 9999, rows)),
                                                pick(["AB", "CD", "EF", "GH"]), ""),
        "contract": pick(CONTRACTS),
        "payment_method": pick(PAYMENTS),
        "region": pick(REGIONS),
        "tenure_months": pa.array(rng.integers(1, 72, rows)),
        "monthly_charges": pa.array(np.round(rng.normal(55, 18, rows).clip(10, 200), 2)),
        "support_calls": pa.array(rng.poisson(1.5, rows)),
    }
    for i in range(8):
        columns[f"usage_{i}"] = pa.array(np.round(rng.random(rows) * 100, 3))
    columns["churned"] = pa.array(rng.integers(0, 2, rows))
    return pa.table(columns)


def make_csv(path: Path, rows: int) -> None:
    """A 20-column CSV written in chunks, so making it needs little memory."""
    import pyarrow.csv as pacsv

    if path.exists():
        return
    partial = path.with_suffix(".partial")
    writer = None
    for n, start in enumerate(range(0, rows, CHUNK)):
        table = _chunk(start, min(CHUNK, rows - start), seed=n)
        writer = writer or pacsv.CSVWriter(str(partial), table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    partial.rename(path)


CHECKS = [
    {"check": "unique", "columns": ["customer_id"]},
    {"check": "not_null", "column": "email"},
    {"check": "range", "column": "monthly_charges", "min": 0, "max": 500},
    {"check": "allowed_values", "column": "contract", "values": CONTRACTS},
    {"check": "pattern", "column": "postcode", "pattern": "[0-9]{2}"},
    {"check": "row_count", "min": 1},
]


def floor(csv: Path, work: Path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(pacsv.read_csv(csv), work / "floor.parquet")


def floor_pseudonym(csv: Path, work: Path) -> None:
    import duckdb
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from valueloop.data.treatments import hmac_params, hmac_sql

    con = duckdb.connect()
    con.register("source", pacsv.read_csv(csv))
    treated = con.execute(f"SELECT * REPLACE ({hmac_sql('email')} AS email) FROM source",
                          hmac_params(_env(work)["VALUELOOP_PSEUDONYM_KEY"])).to_arrow_table()
    pq.write_table(treated, work / "floor.parquet")


def pandas_glue(csv: Path, work: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(csv)
    problems = []
    if frame["customer_id"].duplicated().any():
        problems.append("customer_id not unique")
    if frame["email"].isna().any():
        problems.append("email has nulls")
    if not frame["monthly_charges"].between(0, 500).all():
        problems.append("monthly_charges out of range")
    if not frame["contract"].isin(CONTRACTS).all():
        problems.append("contract has unknown values")
    if not frame["postcode"].astype(str).str.fullmatch(r"[0-9]{4}[A-Z]{2}").all():
        problems.append("postcode has a bad value")
    if len(frame) < 1:
        problems.append("no rows")
    assert not problems, problems
    frame.to_parquet(work / "pandas.parquet")


def _env(work: Path) -> dict[str, str]:
    """valueloop's settings for the run: a key of its own, as ingest refuses the development one."""
    return {"VALUELOOP_HOME": str(work / "home"), "VALUELOOP_PSEUDONYM_KEY": "benchmark-key"}


def valueloop_setup(csv: Path, work: Path) -> None:
    """The use case with the churn example's DPIA, approved; not timed."""
    from valueloop.config import load_settings
    from valueloop.examples import example_dir
    from valueloop.outcomes import privacy, usecases, users
    from valueloop.outcomes.lifecycle import State
    from valueloop.outcomes.spec import ColumnTreatment, load_spec, parse_spec
    from valueloop.store import session

    spec = load_spec(example_dir("churn") / "valueloop.yaml").model_dump(mode="json")
    spec["sources"] = [{"name": "customers", "kind": "csv", "path": str(csv)}]
    spec["data"] = {"mode": "overwrite", "checks": CHECKS}
    region = ColumnTreatment(column="postcode", treatment="generalize", params={"prefix": 2})
    with session(load_settings(_env(work))) as s:
        for name in ("admin", "olivia", "sam", "ana", "eve", "dave", "dana", "devon", "pia", "oscar"):
            users.add_user(s, "admin", users.NewUser(name=name, is_privacy_officer=name == "pia"))
        usecases.create_usecase(s, "olivia", parse_spec(spec))
        usecases.advance(s, "ana", "churn", State.formulated)
        privacy.submit(s, "olivia", "churn")
        privacy.approve(s, "pia", "churn", [region])


#: valueloop's steps as its progress callback names them, with the wall and CPU seconds each began at
STEPS: list[tuple[str, float, float]] = []


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def valueloop_ingest(csv: Path, work: Path) -> None:
    from valueloop.config import load_settings
    from valueloop.data import ingest
    from valueloop.store import session

    def progress(step: str, rows: int) -> None:
        if not STEPS or STEPS[-1][0] != step:
            STEPS.append((step, time.perf_counter(), _cpu()))

    settings = load_settings(_env(work))
    with session(settings) as s:
        ingest(s, settings, "dave", "churn", project_dir=csv.parent, progress=progress)


METHODS = {"floor": floor, "floor_pseudonym": floor_pseudonym, "pandas": pandas_glue, "valueloop": valueloop_ingest}


def child(method: str, csv: Path, work: Path) -> None:
    if method == "valueloop":
        valueloop_setup(csv, work)
    cpu_before, started = _cpu(), time.perf_counter()
    METHODS[method](csv, work)
    ended, cpu_after = time.perf_counter(), _cpu()
    ends = [(at, cpu) for _, at, cpu in STEPS[1:]] + [(ended, cpu_after)]  # the last step ends with the method
    print(json.dumps({"seconds": ended - started, "cpu": cpu_after - cpu_before,
                      "peak_mb": peak_mib(),
                      "steps": {step: end - at for (step, at, _), (end, _) in zip(STEPS, ends, strict=False)},
                      "steps_cpu": {step: end - at for (step, _, at), (_, end) in zip(STEPS, ends, strict=False)}}))


def measure(method: str, csv: Path, base: Path) -> dict[str, float]:
    work = base / f"work-{method}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    done = subprocess.run([sys.executable, __file__, "--child", method, "--csv", str(csv), "--work", str(work)],
                          capture_output=True, text=True, check=False)
    shutil.rmtree(work, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{method} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/valueloop-bench"))
    parser.add_argument("--child", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.csv, args.work)
        return

    args.dir.mkdir(parents=True, exist_ok=True)
    csv, double = args.dir / f"data-{args.rows}.csv", args.dir / f"data-{2 * args.rows}.csv"
    started = time.perf_counter()
    make_csv(csv, args.rows)
    print(f"{args.rows:,} rows x 20 columns, {csv.stat().st_size / 2**20:,.0f} MiB CSV "
          f"(made in {time.perf_counter() - started:.1f} s)")
    results = {m: measure(m, csv, args.dir) for m in ("floor", "floor_pseudonym", "pandas", "valueloop")}
    print(f"{'method':<46}{'seconds':>9}{'CPU s':>8}{'peak RSS MiB':>14}")
    labels = {"floor": "(a) floor: pyarrow.csv read + Parquet write",
              "floor_pseudonym": "(a') floor + the e-mail's keyed pseudonym",
              "pandas": "(b) pandas: read_csv + checks + to_parquet",
              "valueloop": "(c) valueloop: treat, check, version, profile"}
    for method, result in results.items():
        print(f"{labels[method]:<46}{result['seconds']:>9.2f}{result['cpu']:>8.2f}{result['peak_mb']:>14,.0f}")
    steps, steps_cpu = results["valueloop"]["steps"], results["valueloop"]["steps_cpu"]
    print("valueloop's steps: " + ", ".join(f"{step} {wall:.2f} s ({steps_cpu[step]:.2f} s CPU)"
                                            for step, wall in steps.items()))
    fl, pd_, vl = (results[m]["seconds"] for m in ("floor", "pandas", "valueloop"))
    cpu = {m: results[m]["cpu"] for m in results}
    print(f"valueloop / floor  = {vl / fl:.2f}x wall, {cpu['valueloop'] / cpu['floor']:.2f}x CPU   (goal <= 1.2x at 10M rows)")
    pseudonymized = results["floor_pseudonym"]
    print(f"floor + pseudonym / floor = {pseudonymized['seconds'] / fl:.2f}x wall, "
          f"{pseudonymized['cpu'] / cpu['floor']:.2f}x CPU   (the required pseudonym alone; valueloop / it = "
          f"{vl / pseudonymized['seconds']:.2f}x wall)")
    print(f"pandas / valueloop = {pd_ / vl:.2f}x wall, {cpu['pandas'] / cpu['valueloop']:.2f}x CPU   (goal >= 3x)")
    print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    make_csv(double, 2 * args.rows)
    larger = measure("valueloop", double, args.dir)
    print(f"valueloop on {2 * args.rows:,} rows ({double.stat().st_size / 2**20:,.0f} MiB): "
          f"{larger['seconds']:.2f} s, peak RSS {larger['peak_mb']:,.0f} MiB "
          f"({larger['peak_mb'] / results['valueloop']['peak_mb']:.2f}x the peak at {args.rows:,} rows; "
          "goal: flat)")


if __name__ == "__main__":
    main()

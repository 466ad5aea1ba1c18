"""The prediction log on an object store against local disk, side by side in one run.

(a) per request: a serve replica's ``AsyncPredictionLogger.log`` for N records (what a request
pays), then the flush that writes them (what the writer thread pays), to a local folder and to
an S3-compatible server (moto's, started on loopback). Goal (issue 16): the object store no more
than 10% slower per request, since writing is asynchronous.
(b) the monitor's read: 1M logged rows in 200 files over two days, read back as one window with
``PredictionLog.read`` from local disk and from the object store.

Needs the test extra (moto[server]). The machine may be shared: the load average is printed.

    python benchmarks/object_store.py
    python benchmarks/object_store.py --requests 20000 --rows 200000 --files 40   # quicker
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p",
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            break
        except OSError:
            time.sleep(0.2)
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_REGION="us-east-1")
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    return process, endpoint


def _record(i: int, ts: datetime | None = None) -> dict[str, object]:
    record: dict[str, object] = {"request_id": f"r{i}", "model_version": "1", "latency_seconds": 0.001,
                                 "prediction": i % 2, "probability": 0.25, "tenure_months": i % 72,
                                 "monthly_charges": 20.0 + i % 100, "contract": "monthly"}
    if ts is not None:
        record["ts"] = ts
    return record


def per_request(settings, requests: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(µs per log() call, seconds of the writes) for ``requests`` records."""
    from valueloop.deploy.predlog import AsyncPredictionLogger, PredictionLog

    logger = AsyncPredictionLogger(PredictionLog(settings, "churn"))  # as a serve replica makes it
    records = [_record(i) for i in range(requests)]
    start = time.perf_counter()
    for record in records:
        logger.log(record)
    logged = time.perf_counter() - start
    logger.flush()
    written = time.perf_counter() - start
    logger.close()
    return logged / requests * 1e6, written


def monitor_read(settings, rows: int, files: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds to read ``rows`` rows in ``files`` files over two days as one window."""
    import pyarrow as pa

    from valueloop.deploy.predlog import PredictionLog

    plog = PredictionLog(settings, "monitored")
    now = datetime.now(UTC)
    per_file = rows // files
    for f in range(files):
        ts = now - timedelta(days=1 + f % 2, minutes=f)
        plog.append(pa.Table.from_pylist([_record(f * per_file + i, ts) for i in range(per_file)]), source="rest")
    start = time.perf_counter()
    table = plog.read(now - timedelta(days=3), now)
    took = time.perf_counter() - start
    assert table.num_rows == per_file * files, table.num_rows
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    from valueloop.config import load_settings

    process, endpoint = _moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = load_settings({"VALUELOOP_HOME": tmp})
            stores = {"local disk": dataclasses.replace(base, prediction_log=f"{tmp}/log"),
                      f"S3 ({endpoint}, moto)": dataclasses.replace(base, prediction_log="s3://bench/log")}
            print(f"load average before: {os.getloadavg()}")
            logged = {name: per_request(s, args.requests) for name, s in stores.items()}
            read = {name: monitor_read(s, args.rows, args.files) for name, s in stores.items()}
    finally:
        process.kill()
    print(f"(a) prediction log, {args.requests} records through AsyncPredictionLogger")
    for name, (micros, written) in logged.items():
        print(f"    {name:<40} {micros:6.2f} µs per request; all written in {written:6.2f} s")
    (local_us, local_s), (s3_us, s3_s) = logged.values()
    print(f"    object store / local disk: {s3_us / local_us:.2f}x per request, {s3_s / local_s:.2f}x writing")
    print(f"(b) monitor read, {args.rows} rows in {args.files} files over two days")
    for name, seconds in read.items():
        print(f"    {name:<40} {seconds:6.2f} s ({args.rows / seconds:,.0f} rows/s)")
    local, s3 = read.values()
    print(f"    object store / local disk: {s3 / local:.2f}x")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

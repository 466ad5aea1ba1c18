"""The Redis Streams consumer end to end on a real redis-server: throughput with one and with two
consumers, and latency at a steady offered load.

Each consumer is a ``valueloop stream`` process (model loaded through the Learn phase's loader,
every prediction written to the output stream and the prediction log before its XACK). The
model is the batch benchmark's HistGradientBoostingClassifier on 20 features. Throughput is
counted from the first to the last output entry over a backlog of ``--events`` released to the
group once every consumer has joined (start-up excluded); latency is the time from an event's XADD to its output entry (both stamped by
Redis's clock in the entry ids) with a producer offering ``--rate`` events/s for ``--seconds``.
Goals (issue 6): at least 10,000 events/s per consumer, p99 latency under 100 ms at 5,000/s.

    python benchmarks/stream_throughput.py                  # 200,000 events
    python benchmarks/stream_throughput.py --events 50000   # a quicker run
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from batch_score import FEATURES, _features, make_home

from valueloop.deploy.redis_server import local_redis_server
from valueloop.deploy.stream import send_events, stream_names


def _records(count: int) -> list[dict[str, float]]:
    X = _features(count, seed=5)
    return [dict(zip(FEATURES, row, strict=True)) for row in X.tolist()]


def _consumers(home: Path, url: str, count: int, batch_size: int) -> list[tuple[subprocess.Popen[str], int]]:
    """Consumer processes and their metrics ports, once every one answers /healthz (model loaded)."""
    import httpx

    from valueloop.deploy.redis_server import free_port

    env = {**os.environ, "VALUELOOP_HOME": str(home), "VALUELOOP_REDIS_URL": url, "VALUELOOP_USER": "oscar"}
    started = []
    for i in range(count):
        port = free_port()
        started.append((subprocess.Popen(
            [sys.executable, "-m", "valueloop", "stream", "churn", "--consumer", f"c{i}", "--batch-size",
             str(batch_size), "--block-ms", "20", "--metrics-port", str(port), "--json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), port))
    for process, port in started:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"a consumer exited:\n{process.communicate()[1]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
    return started


def _ms(entry_id: bytes | str) -> int:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])


def _stop(processes: list[tuple[subprocess.Popen[str], int]]) -> None:
    for p, _ in processes:
        p.terminate()
    for p, _ in processes:
        _, err = p.communicate(timeout=60)
        if p.returncode != 0:
            raise SystemExit(f"a consumer failed:\n{err}")


def _reset(client: Any, backlog: list[dict[str, float]] | None = None) -> None:
    """Empty streams; a backlog is hidden from the group (created at its end) until released."""
    client.flushdb()
    send_events(client, "churn", backlog or [])
    client.xgroup_create(stream_names("churn")[0], "valueloop", id="$", mkstream=True)


def throughput(client: Any, home: Path, url: str, records: list[dict[str, float]], consumers: int,
               batch_size: int) -> dict[str, float]:
    _reset(client, records)
    processes = _consumers(home, url, consumers, batch_size)
    client.xgroup_setid(stream_names("churn")[0], "valueloop", id="0")  # all consumers start together
    out = stream_names("churn")[1]
    while client.xlen(out) < len(records):
        if any(p.poll() is not None for p, _ in processes):
            raise SystemExit(f"a consumer exited:\n{[p.communicate()[1] for p, _ in processes]}")
        time.sleep(0.2)
    _stop(processes)
    first, last = client.xrange(out, count=1)[0][0], client.xrevrange(out, count=1)[0][0]
    seconds = max(_ms(last) - _ms(first), 1) / 1000
    return {"events": len(records), "seconds": seconds, "per_consumer": len(records) / seconds / consumers}


def latency(client: Any, home: Path, url: str, rate: int, seconds: float, batch_size: int) -> dict[str, float]:
    _reset(client)
    processes = _consumers(home, url, 1, batch_size)
    records = _records(int(rate * seconds))
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    started = time.perf_counter()
    for i, start in enumerate(range(0, len(records), per_tick)):
        send_events(client, "churn", records[start:start + per_tick])
        pause = started + (i + 1) * tick - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    offered = len(records) / (time.perf_counter() - started)
    out = stream_names("churn")[1]
    while client.xlen(out) < len(records):
        time.sleep(0.1)
    _stop(processes)
    delays = np.array([_ms(entry_id) - _ms(fields[b"event_id"]) for entry_id, fields in client.xrange(out)])
    return {"offered": offered, "p50": float(np.percentile(delays, 50)), "p99": float(np.percentile(delays, 99)),
            "max": float(delays.max())}


def main() -> None:
    import redis

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="valueloop-bench-stream-"))
    try:
        with local_redis_server() as url:
            make_home(root / "home")
            client = redis.Redis.from_url(url)
            records = _records(args.events)
            one = throughput(client, root / "home", url, records, 1, args.batch_size)
            two = throughput(client, root / "home", url, records, 2, args.batch_size)
            late = latency(client, root / "home", url, args.rate, args.seconds, args.batch_size)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.events:,} events of {len(FEATURES)} features, consumer batch {args.batch_size}, "
          "HistGradientBoostingClassifier; each event scored, logged, output and XACKed")
    for name, r in (("1 consumer", one), ("2 consumers", two)):
        print(f"{name:12} {r['events']:>9,} events in {r['seconds']:6.2f} s: "
              f"{r['per_consumer']:>9,.0f} events/s per consumer  (goal >= 10,000)")
    print(f"latency XADD -> output entry at {late['offered']:,.0f} events/s offered: p50 {late['p50']:.0f} ms, "
          f"p99 {late['p99']:.0f} ms (goal < 100 ms), max {late['max']:.0f} ms")


if __name__ == "__main__":
    main()

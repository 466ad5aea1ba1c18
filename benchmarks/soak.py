"""Soak: ``--minutes`` (default 10) of the loop's mixed load against real servers, as a team runs it.

``valueloop server`` (the control plane, with its schedules) and ``valueloop serve`` (REST, with
the prediction log) run as processes on a home made like the demo's: churn with two trained,
accepted versions, the first champion. Meanwhile:

- single-row predictions at a steady rate (``--rate`` per second, default 20, from 8 senders),
  each answered request's id kept;
- labels for one answered request in ten, arriving in batches through ``POST /feedback``;
- every minute a promotion of the other version to champion, and half a minute later a rollback;
- every 30 s a monitor run; every 2 minutes an ingest (both through the control-plane API).

Per minute it prints errors, requests, p50 and p99 latency, the RSS and open file descriptors of
each server process, and the load average; at the end the trends (p99 first minute against last;
RSS after the first minute's warm-up, goal within 10%) and the prediction-log records written
against the requests answered (goal: equal).

    python benchmarks/soak.py                 # ten minutes
    python benchmarks/soak.py --minutes 2     # a quick one
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from serve_rest import free_port, wait_ready  # this folder is the script's first import path

HERE = Path(__file__).resolve().parent
OUT = HERE / ".out" / "soak"
ROWS = 1200
SENDERS = 8
CANDIDATES = [{"name": "logistic", "kind": "logistic", "baseline": True},
              {"name": "lightgbm", "kind": "lightgbm", "params": {"n_estimators": 20}}]


def setup(home: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The churn use case with two accepted versions (the first champion), tokens for the
    people acting, and the rows predictions are asked for (not timed)."""
    from rich.console import Console

    from valueloop.config import load_settings
    from valueloop.data import ingest
    from valueloop.demo import DemoContext
    from valueloop.demo import outcomes as chapter
    from valueloop.demo.deploy import REQUEST
    from valueloop.examples import load_generator
    from valueloop.learn import registry, training
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.outcomes.users import create_token
    from valueloop.store import session

    settings = load_settings({"VALUELOOP_HOME": str(home)})
    ctx = DemoContext(settings=settings, workspace=home / "workspace", console=Console(file=io.StringIO()))
    chapter.run(ctx)
    project = ctx.state["project"]
    load_generator("churn").write(project / "data", ROWS, 7)
    with session(settings) as s:
        data = get_usecase(s, "churn").spec
        data["model"] = data["model"] | {"candidates": CANDIDATES,
                                         "tests": data["model"]["tests"] | {"max_seconds_per_row": 60.0}}
        update_usecase(s, "ana", parse_spec(data))
    with session(settings) as s:
        ingest(s, settings, "dave", "churn", project_dir=project)
    for _ in range(2):
        with session(settings) as s:
            report = training.train(s, settings, "dana", "churn", candidates=["lightgbm"])
        if report.registered is None:
            sys.exit(f"training registered no version: {report.model_dump_json()[:3000]}")
        version = report.registered.version
        with session(settings) as s:
            registry.accept(s, "olivia", "churn", version, accepted=True, comment="soak")
    with session(settings) as s:
        registry.promote(s, settings, "dana", "churn", 1, "champion")
        tokens = {who: create_token(s, who, "soak").token for who in ("dana", "oscar", "dave", "devon")}
    return tokens, [REQUEST | {"tenure_months": 1 + i % 72, "support_calls": i % 9} for i in range(200)]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "valueloop", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def proc_stats(pid: int) -> tuple[float, int]:
    """RSS in MiB and open file descriptors of a process (and its children, for a server's workers)."""
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    rss, fds = 0.0, 0
    for one in pids:
        try:
            status = Path(f"/proc/{one}/status").read_text()
            rss += int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024
            fds += len(os.listdir(f"/proc/{one}/fd"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return rss, fds


class Load:
    """Every request's outcome by minute: latencies, errors (with what failed), answered ids."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[int, list[float]] = defaultdict(list)
        self.errors: dict[int, list[str]] = defaultdict(list)
        self.answered: list[str] = []
        self.began = time.monotonic()
        self.stop = threading.Event()

    def minute(self) -> int:
        return int((time.monotonic() - self.began) // 60)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[self.minute()].append(what[:200])


def predictions(load: Load, url: str, token: str, rows: list[dict[str, Any]], rate: float) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30, headers=headers) as client:
        n, next_at = 0, time.monotonic()
        while not load.stop.is_set():
            next_at += 1 / rate
            if (pause := next_at - time.monotonic()) > 0:
                time.sleep(pause)
            started = time.perf_counter()
            try:
                answer = client.post(f"{url}/predict/churn", json=rows[n % len(rows)])
            except httpx.HTTPError as exc:
                load.error(f"predict: {type(exc).__name__}: {exc}")
                continue
            finally:
                n += 1
            seconds = time.perf_counter() - started
            if answer.status_code != 200:
                load.error(f"predict: {answer.status_code} {answer.text}")
                continue
            with load.lock:
                load.latency[load.minute()].append(seconds)
                load.answered.append(answer.headers["x-request-id"])


def labels(load: Load, url: str, token: str) -> None:
    """One answered request in ten gets its label, sent every 5 s."""
    import httpx

    sent = 0
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        while not load.stop.wait(5):
            with load.lock:
                ids = load.answered[sent::10]
                sent = len(load.answered) - (len(load.answered) - sent) % 10
            if ids:
                done = client.post(f"{url}/feedback/churn", json=[{"request_id": r, "label": i % 2}
                                                                 for i, r in enumerate(ids)])
                if done.status_code != 200:
                    load.error(f"labels: {done.status_code} {done.text}")


def control(load: Load, api: str, tokens: dict[str, str], minutes: float) -> None:
    """Promotion, rollback, monitor and ingest on their clocks, through the control-plane API."""
    import httpx

    def call(who: str, path: str, body: dict[str, Any] | None = None) -> None:
        try:
            done = httpx.post(f"{api}/api/usecases/churn/{path}", json=body, timeout=300,
                              headers={"Authorization": f"Bearer {tokens[who]}"})
        except httpx.HTTPError as exc:
            load.error(f"{path}: {type(exc).__name__}: {exc}")
            return
        if done.status_code >= 400:
            load.error(f"{path}: {done.status_code} {done.text}")

    tick, end = 0, load.began + minutes * 60
    while time.monotonic() < end and not load.stop.is_set():
        if tick % 60 == 0:
            call("dana", "models/2/promotion", {"alias": "champion"})
        if tick % 60 == 30:
            call("oscar", "rollback")
        if tick % 30 == 15:
            call("oscar", "monitor")
        if tick % 120 == 45:
            call("dave", "datasets", {"mode": "overwrite"})
        tick += 5
        time.sleep(max(0.0, load.began + tick - time.monotonic()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=20, help="predictions per second")
    args = parser.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    home = OUT / "home"
    tokens, rows = setup(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")} | {"VALUELOOP_HOME": str(home)}
    api_port, serve_port = free_port(), free_port()
    server = start(["server", "--port", str(api_port)], env, OUT / "server.log")
    serve = start(["serve", "--port", str(serve_port)], env, OUT / "serve.log")
    api, url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{serve_port}"
    processes = {"server": server, "serve": serve}
    try:
        wait_ready(f"{api}/health", server)
        wait_ready(f"{url}/v2/health/ready", serve)
        load = Load()
        # several senders share the rate, so that one slow answer does not hold the next back
        threads = [threading.Thread(target=predictions, args=(load, url, tokens["devon"], rows, args.rate / SENDERS))
                   for _ in range(SENDERS)]
        threads += [threading.Thread(target=labels, args=(load, url, tokens["oscar"])),
                   threading.Thread(target=control, args=(load, api, tokens, args.minutes))]
        for t in threads:
            t.start()
        stats: dict[str, list[tuple[float, int]]] = {name: [] for name in processes}
        print(f"soak: {args.minutes:g} min, {args.rate:g} predictions/s, home {home}", flush=True)
        print("min  requests errors   p50 ms   p99 ms   " + "   ".join(f"{n} RSS MiB/fds" for n in processes)
              + "   load avg", flush=True)
        for minute in range(int(args.minutes)):
            time.sleep(max(0.0, load.began + (minute + 1) * 60 - time.monotonic()))
            for name, p in processes.items():
                stats[name].append(proc_stats(p.pid))
            with load.lock:
                lat, errs = load.latency[minute], load.errors[minute]
            print(f"{minute + 1:3d} {len(lat):9d} {len(errs):6d} {percentile(lat, .5) * 1000:8.1f} "
                  f"{percentile(lat, .99) * 1000:8.1f}   "
                  + "   ".join(f"{stats[n][-1][0]:8.0f}/{stats[n][-1][1]:<4d}" for n in processes)
                  + f"   {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        load.stop.set()
        for t in threads:
            t.join()
    finally:
        serve.send_signal(signal.SIGTERM)  # the prediction log is flushed as it stops
        serve.wait(60)
        server.send_signal(signal.SIGTERM)
        server.wait(60)

    from valueloop.config import load_settings
    from valueloop.deploy.predlog import PredictionLog

    logged = PredictionLog(load_settings({"VALUELOOP_HOME": str(home)}), "churn").read()
    rest = {r for r, s in zip(logged["request_id"].to_pylist(), logged["source"].to_pylist()) if s == "rest"}
    errors = [e for m in sorted(load.errors) for e in load.errors[m]]
    p99 = [percentile(load.latency[m], .99) * 1000 for m in range(int(args.minutes))]
    print(f"\nerrors: {len(errors)} (goal 0)" + "".join(f"\n  {e}" for e in errors[:10]))
    print(f"p99 ms by minute: {' '.join(f'{x:.0f}' for x in p99)} (first {p99[0]:.0f}, last {p99[-1]:.0f})")
    for name in processes:
        rss = [r for r, _ in stats[name][1:]] or [stats[name][0][0]]
        print(f"{name}: RSS after warm-up {min(rss):.0f}-{max(rss):.0f} MiB ({(max(rss) / min(rss) - 1) * 100:.1f}% "
              f"spread, goal within 10%); fds {' '.join(str(f) for _, f in stats[name])}")
    answered = set(load.answered)
    print(f"prediction log: {len(rest & answered)} records of {len(answered)} requests answered "
          f"(goal equal; {len(rest - answered)} logged that were not answered)")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

"""REST serving, side by side: one scikit-learn gradient boosting model (20 numeric features)
served by valueloop (prediction logging on), by MLflow's own server (``mlflow models serve
--env-manager local``), by MLServer's scikit-learn runtime without and with its adaptive
batching, and by a bare FastAPI app calling ``model.predict`` (the ceiling). One after another,
each server pinned to core 0 (``taskset -c 0``), wrk pinned to core 1, single-row requests over
loopback at concurrency 1, 16 and 64, ~10 s each. Prints req/s, p50 and p99 per run and the
ratios of issue 5's goals: valueloop ≥ 0.8× the bare app at c=1, ≥ 3× MLServer-with-batching
at c=16 and 64 with a lower p99. valueloop is also loaded as an Open Inference Protocol client
loads it, with a JSON tensor and with tritonclient's default binary tensors (issue 13). And
valueloop again with the model's trees compiled to native code at registration (``model:
compile: true``), whose p99 at c=1 should stay within 1.5x the bare app's (issue 19): the p99 of
one 5-second run moved 2x between runs of the same server, so that ratio is the median of
several rounds in which the two servers take turns, one alive at a time (:func:`alternating`);
``--compiled`` runs only valueloop, compiled valueloop and the bare app, ``--p99`` only those rounds.

MLServer is not one of valueloop's dependencies: on first run the script creates a separate
virtual environment for it, ``benchmarks/.venv-peers`` (``python -m venv`` then ``pip install
mlserver mlserver-sklearn scikit-learn==<the version valueloop uses>``), so the same pickled
model loads in both. wrk comes from the system (``apt-get install wrk``).

    python benchmarks/serve_rest.py                 # the full run, ~4 minutes
    python benchmarks/serve_rest.py --seconds 3     # a quick one
    python benchmarks/serve_rest.py --compiled      # without the peers (MLflow, MLServer)
    python benchmarks/serve_rest.py --p99 --seconds 5   # only issue 19's p99 rounds
    python benchmarks/serve_rest.py --p99 --chores      # ... also without the log, the poll, both
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / ".out" / "serve_rest"
PEERS = HERE / ".venv-peers"
PY = Path(sys.executable)
BIN = PY.parent
FEATURES = [f"f{i}" for i in range(20)]
CONCURRENCY = (1, 16, 64)
#: rounds of c=1 runs taking turns between compiled valueloop and the bare app
TURNS = 5
TICK = os.sysconf("SC_CLK_TCK")

BARE_APP = '''
import pickle
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

FEATURES = [f"f{i}" for i in range(20)]
with open("model.pkl", "rb") as f:
    model = pickle.load(f)
app = FastAPI()


@app.post("/predict")
async def predict(request: Request):
    row = await request.json()
    x = np.array([[row[n] for n in FEATURES]], dtype=np.float64)
    return JSONResponse({"predictions": model.predict(x).tolist()})
'''

LUA = b'''
wrk.method = "POST"
wrk.body = [==[%s]==]
%s
'''
JSON = {"Content-Type": "application/json"}
#: a load: the URL, the body and its headers
Load = tuple[str, bytes, dict[str, str]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_peers() -> Path:
    """The MLServer virtual environment, created on first use."""
    import sklearn

    mlserver = PEERS / "bin" / "mlserver"
    if not mlserver.exists():
        print(f"creating {PEERS} for MLServer (first run only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(PEERS / "bin" / "pip"), "install", "-q", "mlserver", "mlserver-sklearn",
                        f"scikit-learn=={sklearn.__version__}"], check=True)
    return mlserver


def train(out: Path) -> tuple[Any, Any]:
    import numpy as np
    import pickle
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = make_classification(n_samples=5000, n_features=20, n_informative=10, random_state=0)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(x, y)
    (out / "model.pkl").write_bytes(pickle.dumps(model))
    import joblib

    (out / "mlserver" / "gbm").mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "mlserver" / "gbm" / "model.joblib")
    return model, np.asarray(x[:1])


def register_in_valueloop(home: Path, model: Any, x: Any, compile: bool = False) -> Path:
    """The churn use case (demo chapter 1) with this model registered (its trees compiled with
    ``compile``), accepted and promoted through the Learn phase's registry, as a trained model
    would be. Returns the model dir."""
    import io
    import uuid

    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from rich.console import Console

    from valueloop.config import load_settings
    from valueloop.demo import DemoContext
    from valueloop.demo import outcomes as chapter
    from valueloop.learn import registry, tracking
    from valueloop.learn.tables import TrainingRun
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.store import session

    settings = load_settings({"VALUELOOP_HOME": str(home)})
    chapter.run(DemoContext(settings=settings, workspace=home / "ws", console=Console(file=io.StringIO())))
    frame = pd.DataFrame(x, columns=FEATURES)
    tracking.configure(settings)
    mlflow.set_experiment(experiment_id=tracking.experiment(settings, "churn"))
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(frame, model.predict(x)),
                                        input_example=frame, pip_requirements=tracking.requirements("sklearn"),
                                        serialization_format="cloudpickle")
    with session(settings) as s:
        row = TrainingRun(run_id=run.info.run_id, usecase="churn", training_id=uuid.uuid4().hex[:12],
                          dataset_version=1, dpia_version=1, candidate={"name": "gbm", "kind": "gradient_boosting"},
                          params={}, metrics={}, features=FEATURES, seed=0, split={}, git_commit=None,
                          status="finished", error=None, reproduces=None, actor="dana")
        s.add(row)
        s.flush()
        version = registry.register(s, settings, "dana", get_usecase(s, "churn"), row, info.model_uri, [],
                                    compile=compile).version
        registry.accept(s, "olivia", "churn", version, accepted=True, comment="benchmark model")
        registry.promote(s, settings, "dana", "churn", version, "champion")
    return Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(home / "model-copy")))


def served_home(out: Path) -> tuple[bytes, dict[str, str]]:
    """A fresh ``out`` whose home serves this script's model as churn's champion: one record's
    JSON body, and the environment of a valueloop process on that home."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    OUT.mkdir(parents=True, exist_ok=True)  # where the wrk runner writes the request script
    model, x = train(out)
    register_in_valueloop(out / "home", model, x)
    body = json.dumps(dict(zip(FEATURES, x[0].tolist()))).encode()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")} | {"VALUELOOP_HOME": str(out / "home")}
    return body, env


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {OUT}/*.log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready in {seconds:.0f} s")


def wrk(load: Load, concurrency: int, seconds: int, cores: str = "1", threads: int = 1) -> dict[str, float]:
    url, body, headers = load
    script = OUT / "post.lua"
    script.write_bytes(LUA % (body, "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()).encode()))
    done = subprocess.run(["taskset", "-c", cores, "wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency",
                           "--timeout", "10s", "-s", str(script), url], capture_output=True, text=True, check=True)
    text = done.stdout

    def latency(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors:.*", text)
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"),
            "errors": float(errors.group(1)) if errors else 0.0, "socket_errors": socket_errors is not None}


@contextmanager
def serving(name: str, cmd: list[str], ready_url: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server pinned to core 0, once ready; stopped on leaving. Its output goes to OUT/<name>.log."""
    with open(OUT / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
    try:
        wait_ready(ready_url, proc)
        yield proc
    finally:
        stop(proc)


def run_server(name: str, cmd: list[str], ready_url: str, loads: dict[str, Load], seconds: int,
               env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, dict[int, dict[str, float]]]:
    """Each load at each concurrency against one server: results by load name."""
    with serving(name, cmd, ready_url, env, cwd):
        results: dict[str, dict[int, dict[str, float]]] = {}
        for label, load in loads.items():
            wrk(load, 4, 2)  # warm up
            results[label] = {}
            for c in CONCURRENCY:
                results[label][c] = r = wrk(load, c, seconds)
                print(f"{label:<24} c={c:<3} {r['rps']:>8.0f} req/s   p50 {r['p50']:>7.2f} ms   "
                      f"p99 {r['p99']:>7.2f} ms" + (f"   non-2xx {r['errors']:.0f}" if r["errors"] else ""), flush=True)
        return results


#: a server of the c=1 rounds: its command, readiness URL, load, environment and folder
Contender = tuple[list[str], str, Load, dict[str, str] | None, Path | None]


def alternating(contenders: dict[str, Contender], rounds: int, seconds: int) -> dict[str, list[dict[str, float]]]:
    """c=1 runs in rounds, one server alive at a time: each is started, warmed up (2 s at c=4),
    measured and stopped completely before the next starts, every server treated alike (core 0,
    wrk on core 1). Runs minutes apart did not see the machine alike, so the servers take turns
    within each round. Two servers up side by side each measured the other's idle threads on
    their shared core: moved to wrk's core, those of an idle valueloop server raised the bare
    app's p99 (1.0 to 2.4-5.2 ms); stopped (SIGSTOP), a valueloop server stalled once after its
    resume (p99 115 ms over the next 5 s). Each round's line is printed as it ends, with the
    machine's load."""
    turns: dict[str, list[dict[str, float]]] = {label: [] for label in contenders}
    for i in range(1, rounds + 1):
        for label, (cmd, ready_url, load, env, cwd) in contenders.items():
            with serving(f"{label}, round {i}", cmd, ready_url, env, cwd) as proc:
                wrk(load, 4, 2)  # warm up
                before = threads_cpu(proc.pid)
                turns[label].append(r := wrk(load, 1, seconds))
                main, others = (b - a for a, b in zip(before, threads_cpu(proc.pid), strict=True))
            print(f"  round {i} {label:<20} p50 {r['p50']:6.2f} ms   p99 {r['p99']:6.2f} ms   {r['rps']:5.0f} req/s"
                  f"   CPU ms/s: main threads {main / seconds * 1000:4.0f}, other threads {others / seconds * 1000:3.0f}"
                  f"   (load average {os.getloadavg()[0]:.1f})", flush=True)
    return turns


#: ``--chores``: compiled valueloop without one of its chores, by the server's options
CHORES_OFF = {"log off": {"log_predictions": False}, "poll off": {"poll_seconds": 3600},
              "both off": {"log_predictions": False, "poll_seconds": 3600}}


def _compiled(port: int, body: bytes, options: dict[str, Any] | None = None) -> Contender:
    """Compiled valueloop on ``port``: ``valueloop serve``, or with ``options`` the same app
    under uvicorn with those server options (what ``serve`` passes its workers)."""
    from valueloop.deploy.app import OPTIONS_ENV

    cmd = [str(BIN / "valueloop"), "serve", "--port", str(port), "--no-auth"]
    env = {"VALUELOOP_HOME": str(OUT / "home-compiled")}
    if options is not None:
        cmd = [str(BIN / "uvicorn"), "valueloop.deploy.app:app_from_env", "--factory", "--port", str(port),
               "--log-level", "warning"]
        env[OPTIONS_ENV] = json.dumps({"auth": False, **options})
    return (cmd, f"http://127.0.0.1:{port}/v2/health/ready", (f"http://127.0.0.1:{port}/predict/churn", body, JSON),
            env, None)


def p99_rounds(body: bytes, seconds: int, chores: bool = False) -> None:
    """Issue 19's goal: compiled valueloop's p99 at c=1 within 1.5x the bare app's, as the
    median of :data:`TURNS` rounds' ratios. With ``chores``, the rounds also take compiled
    valueloop without its prediction log, without its registry poll and without both, to tell
    which of them its tail comes from."""
    print(f"c=1, valueloop compiled and the bare app, one server up at a time, {seconds} s each in turn:", flush=True)
    bare = free_port()
    contenders = {"valueloop compiled": _compiled(free_port(), body)}
    if chores:
        contenders |= {f"compiled, {label}": _compiled(free_port(), body, options)
                       for label, options in CHORES_OFF.items()}
    contenders["bare FastAPI"] = ([str(BIN / "uvicorn"), "bare:app", "--port", str(bare), "--log-level", "warning"],
                                  f"http://127.0.0.1:{bare}/docs", (f"http://127.0.0.1:{bare}/predict", body, JSON),
                                  None, _write_bare())
    turns = alternating(contenders, TURNS, seconds)
    if chores:
        for label, runs in turns.items():
            if label.startswith("compiled, "):
                print(f"  {label:<20} p99 median {statistics.median(r['p99'] for r in runs):.2f} ms, "
                      f"{statistics.median(r['p99'] / b['p99'] for r, b in zip(runs, turns['bare FastAPI'])):.2f}x "
                      "the bare app's (median of the rounds' ratios)")
    ratios = [c["p99"] / b["p99"] for c, b in zip(turns["valueloop compiled"], turns["bare FastAPI"])]
    print("  ratios by round: " + ", ".join(f"{r:.2f}x" for r in ratios))
    for label, runs in turns.items():  # how far one server's own p99 moves between rounds: the machine's noise
        print(f"  {label} p99 from {min(r['p99'] for r in runs):.2f} to {max(r['p99'] for r in runs):.2f} ms")
    print(f"valueloop compiled p99 / bare FastAPI p99 at c=1: {statistics.median(ratios):.2f}x, the median of "
          f"{TURNS} rounds (goal <= 1.5x); medians of the p99s: "
          f"{statistics.median(r['p99'] for r in turns['valueloop compiled']):.2f} vs "
          f"{statistics.median(r['p99'] for r in turns['bare FastAPI']):.2f} ms")
    print(f"(load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a server's process group, SIGKILL after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _stat(path: str) -> list[str]:
    """The fields of a /proc stat file after the command's name: state, ppid, pgrp, ..."""
    return Path(path).read_text().rsplit(")", 1)[1].split()


def group_pids(group: int) -> list[str]:
    """The processes of a process group (a server: parent and workers)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(_stat(f"/proc/{pid}/stat")[2]) == group:
                found.append(pid)
        except OSError:
            continue
    return found


def group_cpu(group: int) -> float:
    """CPU seconds of every process in a process group so far (a server: parent and workers)."""
    total = 0
    for pid in group_pids(group):
        try:
            fields = _stat(f"/proc/{pid}/stat")
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def threads_cpu(group: int) -> tuple[float, float]:
    """CPU seconds so far of the main threads of a process group's processes, and of all their
    other threads. A server answering at c=1 predicts on its event loop, in its main thread: the
    others are its chores (the prediction log's writer, the registry poll), whose CPU on the
    server's one core is what delays a request behind them (issue 19)."""
    main = others = 0
    for pid in group_pids(group):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                fields = _stat(f"/proc/{pid}/task/{tid}/stat")
                if tid == pid:
                    main += int(fields[11]) + int(fields[12])
                else:
                    others += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return main / TICK, others / TICK


def machine() -> tuple[float, float]:
    """Busy and total CPU seconds of the machine so far."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK, sum(ticks) / TICK


def batched(url: str) -> tuple[float, float]:
    """Rows predicted and model calls so far, over every worker."""
    import httpx

    text = httpx.get(url + "/metrics", timeout=30).text
    return tuple(sum(float(v) for v in re.findall(rf"valueloop_batch_size_{kind}\{{[^}}]*\}} ([\d.e+]+)", text))
                 for kind in ("sum", "count"))  # type: ignore[return-value]


def wrk_arguments(doc: str, flags: dict[str, str] | None = None) -> argparse.Namespace:
    """The command line of a benchmark driven by wrk (``--seconds`` per run, and the script's own
    ``flags`` with their help), refused without wrk."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    for flag, text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    return args


def main() -> None:
    args = wrk_arguments(__doc__, {"--compiled": "only valueloop, valueloop with compiled trees and the bare app",
                                   "--p99": "only the c=1 rounds of compiled valueloop and the bare app",
                                   "--chores": "the c=1 rounds also without the prediction log, the registry "
                                               "poll, and both"})
    mlserver = None if args.compiled or args.p99 else ensure_peers()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    model, x = train(OUT)
    row = dict(zip(FEATURES, x[0].tolist()))
    register_in_valueloop(OUT / "home-compiled", model, x, compile=True)
    if args.p99:
        p99_rounds(json.dumps(row).encode(), args.seconds, args.chores)
        return
    model_dir = register_in_valueloop(OUT / "home", model, x)

    bodies = {
        "record": json.dumps(row).encode(),
        "mlflow": json.dumps({"dataframe_split": {"columns": FEATURES, "data": [x[0].tolist()]}}).encode(),
        "oip": json.dumps({"inputs": [{"name": "predict", "shape": [1, 20], "datatype": "FP64",
                                       "data": x[0].tolist()}]}).encode(),
    }
    binary, header_length = _binary_request(x[0].tolist())
    for batching, size in (("off", 1), ("on", 64)):
        folder = OUT / "mlserver" / f"batching-{batching}"
        (folder / "gbm").mkdir(parents=True)
        shutil.copy(OUT / "mlserver" / "gbm" / "model.joblib", folder / "gbm" / "model.joblib")
        settings: dict[str, Any] = {"name": "gbm", "implementation": "mlserver_sklearn.SKLearnModel",
                                    "parameters": {"uri": "./model.joblib"}}
        if size > 1:
            settings |= {"max_batch_size": size, "max_batch_time": 0.01}
        (folder / "gbm" / "model-settings.json").write_text(json.dumps(settings))

    results: dict[str, dict[int, dict[str, float]]] = {}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results |= run_server(
        "valueloop", [str(BIN / "valueloop"), "serve", "--port", str(port), "--no-auth"], f"{base}/v2/health/ready",
        {"valueloop": (f"{base}/predict/churn", bodies["record"], JSON),
         "valueloop OIP JSON": (f"{base}/v2/models/churn/infer", bodies["oip"], JSON),
         "valueloop OIP binary": (f"{base}/v2/models/churn/infer", binary,
                                  {"Content-Type": "application/octet-stream",
                                   "Inference-Header-Content-Length": str(header_length)})},
        args.seconds, env={"VALUELOOP_HOME": str(OUT / "home")})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results |= run_server(
        "valueloop compiled", [str(BIN / "valueloop"), "serve", "--port", str(port), "--no-auth"],
        f"{base}/v2/health/ready", {"valueloop compiled": (f"{base}/predict/churn", bodies["record"], JSON)},
        args.seconds, env={"VALUELOOP_HOME": str(OUT / "home-compiled")})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results |= run_server(
        "bare FastAPI", [str(BIN / "uvicorn"), "bare:app", "--port", str(port), "--log-level", "warning"],
        f"{base}/docs", {"bare FastAPI": (f"{base}/predict", bodies["record"], JSON)}, args.seconds,
        cwd=_write_bare())
    compiled = results["valueloop compiled"]
    print(f"\nvalueloop compiled / valueloop req/s at c=1: {compiled[1]['rps'] / results['valueloop'][1]['rps']:.2f}x")
    p99_rounds(bodies["record"], args.seconds, args.chores)
    print(f"(in the runs above, one each: {compiled[1]['p99'] / results['bare FastAPI'][1]['p99']:.2f}x)")
    if mlserver is None:
        return
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results |= run_server(
        "mlflow models serve", [str(BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager",
                                "local", "-p", str(port), "-h", "127.0.0.1"],
        f"{base}/ping", {"mlflow models serve": (f"{base}/invocations", bodies["mlflow"], JSON)}, args.seconds,
        env={"MLFLOW_DISABLE_TELEMETRY": "true", "PATH": f"{BIN}:{os.environ['PATH']}"})
    for batching in ("off", "on"):
        port, metrics = free_port(), free_port()
        base = f"http://127.0.0.1:{port}"
        folder = OUT / "mlserver" / f"batching-{batching}"
        (folder / "settings.json").write_text(json.dumps({"http_port": port, "grpc_port": free_port(),
                                                           "metrics_port": metrics, "parallel_workers": 0}))
        name = f"MLServer batching {batching}"
        results |= run_server(name, [str(mlserver), "start", str(folder)], f"{base}/v2/health/ready",
                              {name: (f"{base}/v2/models/gbm/infer", bodies["oip"], JSON)}, args.seconds)

    vl, batched, bare = results["valueloop"], results["MLServer batching on"], results["bare FastAPI"]
    print()
    failed = [f"{name} c={c}" for name, runs in results.items() for c, r in runs.items() if r["errors"]]
    if failed:
        print(f"WARNING: non-2xx answers in {', '.join(failed)}: those figures do not count")
    print(f"valueloop / bare FastAPI at c=1: {vl[1]['rps'] / bare[1]['rps']:.2f}x  (goal >= 0.8x)")
    for c in (16, 64):
        print(f"valueloop / MLServer batching at c={c}: {vl[c]['rps'] / batched[c]['rps']:.2f}x req/s "
              f"(goal >= 3x); p99 {vl[c]['p99']:.1f} ms vs {batched[c]['p99']:.1f} ms (goal: lower)")
    for c in CONCURRENCY:
        print(f"valueloop / mlflow models serve at c={c}: {vl[c]['rps'] / results['mlflow models serve'][c]['rps']:.2f}x")
    for c in CONCURRENCY:
        print(f"valueloop OIP binary / OIP JSON at c={c}: "
              f"{results['valueloop OIP binary'][c]['rps'] / results['valueloop OIP JSON'][c]['rps']:.2f}x req/s")


def _binary_request(values: list[float]) -> tuple[bytes, int]:
    """One row as tritonclient sends it by default: a binary FP64 tensor, binary outputs."""
    import numpy as np
    import tritonclient.http as triton
    from tritonclient.http._utils import _get_inference_request

    tensor = triton.InferInput("predict", [1, 20], "FP64")
    tensor.set_data_from_numpy(np.array([values], dtype=np.float64), binary_data=True)
    body, header_length = _get_inference_request(inputs=[tensor], request_id="", outputs=None, sequence_id=0,
                                                 sequence_start=False, sequence_end=False, priority=0,
                                                 timeout=None, custom_parameters=None)
    assert b"]==]" not in body, "the body would end wrk's Lua string early"
    return body, header_length


def _write_bare() -> Path:
    folder = OUT / "bare"
    folder.mkdir(exist_ok=True)
    (folder / "bare.py").write_text(BARE_APP)
    shutil.copy(OUT / "model.pkl", folder / "model.pkl")
    return folder


if __name__ == "__main__":
    main()

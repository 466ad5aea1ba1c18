"""Serving replicas behind HAProxy, side by side: REST req/s of one ``valueloop serve`` replica
asked directly, then through HAProxy (Debian's package, configured as deploy/haproxy.cfg) with
that one replica and with two. The replicas share one home and are pinned to core 0; HAProxy and
wrk share core 1. On a 2-core machine two replicas cannot scale: the ratios show what the
balancer costs (issue 16's goal: under 15% against direct), not what a second host would add.

Two replicas on one core also cost what splitting a core's load costs, and this model makes that
large: each call of it costs ~0.6 ms whatever its rows (~0.44 ms in scikit-learn's predict_proba,
most of it checking its input), shared by the rows of a micro-batch. Each replica sees half the
concurrency and they take turns on the core, so each call carries fewer rows (at load 6: 3.8
rows per call against 9.9 direct, 280 against 172 us of CPU per request; fewer still on a quiet
machine, where two replicas served about half what one did). Each line prints the replicas' rows
per model call and their CPU per request, which tell the balancer's cost (HAProxy runs on core 1)
from the batching's.
Last, a promotion through the registry, timed until both replicas serve it (goal: within 2 s).

The model is serve_rest.py's (a scikit-learn gradient boosting model, 20 numeric features,
single-row JSON records, prediction logging on); the load is wrk at concurrency 16.

    python benchmarks/topology.py               # ~1 minute
    python benchmarks/topology.py --seconds 3   # a quick one
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import serve_rest  # noqa: E402  (its model, registration and wrk runner)
from deploy_support import haproxy_config  # noqa: E402  (the balancer's configuration, as the scale test's)

OUT = HERE / ".out" / "topology"
CONCURRENCY = 16


@contextmanager
def process(name: str, cmd: list[str], ready_url: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with (OUT / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        serve_rest.wait_ready(ready_url, proc)
        yield proc
    finally:
        serve_rest.stop(proc)


def balancer(name: str, replicas: list[int], env: dict[str, str]) -> tuple[str, object]:
    haproxy = shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if haproxy is None:
        sys.exit("haproxy is not installed: apt-get install haproxy")
    port = serve_rest.free_port()
    config = OUT / f"{name}.cfg"
    config.write_text(haproxy_config(port, {f"r{i}": p for i, p in enumerate(replicas)}))
    url = f"http://127.0.0.1:{port}"
    return url, process(name, ["taskset", "-c", "1", haproxy, "-db", "-f", str(config)], url + "/v2/health/ready", env)


def promotion_reaches(home: Path, ports: list[int]) -> float:
    """Seconds from a promotion's commit until every replica serves the new champion: the same
    model registered again as a second version, accepted and promoted through the registry."""
    import httpx
    from sqlalchemy import select

    from valueloop.config import load_settings
    from valueloop.learn import registry
    from valueloop.learn.tables import ModelVersion, TrainingRun
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.store import session

    settings = load_settings({"VALUELOOP_HOME": str(home)})
    with session(settings) as s:
        first = s.scalars(select(ModelVersion).where(ModelVersion.usecase == "churn")).one()
        run = s.scalars(select(TrainingRun).where(TrainingRun.run_id == first.run_id)).one()
        version = registry.register(s, settings, "dana", get_usecase(s, "churn"), run, first.artifact_uri, []).version
        registry.accept(s, "olivia", "churn", version, accepted=True, comment="benchmark: a second version")
    with session(settings) as s:
        registry.promote(s, settings, "dana", "churn", version, "champion")
    committed = time.monotonic()
    with httpx.Client(timeout=10) as client:
        waiting = set(ports)
        while waiting:
            waiting = {p for p in waiting if next(m["champion"] for m in client.get(
                f"http://127.0.0.1:{p}/models").json() if m["name"] == "churn") != str(version)}
            if waiting and time.monotonic() - committed > 60:
                raise RuntimeError(f"replicas on ports {sorted(waiting)} still serve v{first.version} after 60 s")
            time.sleep(0.01)
    return time.monotonic() - committed


def main() -> None:
    args = serve_rest.wrk_arguments(__doc__)
    body, env = serve_rest.served_home(OUT)

    ports = [serve_rest.free_port(), serve_rest.free_port()]
    results: dict[str, dict[str, float]] = {}
    with ExitStack() as running:
        replicas = []
        for i, port in enumerate(ports):
            url = f"http://127.0.0.1:{port}"
            replicas.append(running.enter_context(process(
                f"replica-{i}", ["taskset", "-c", "0", str(serve_rest.BIN / "valueloop"), "serve", "--port", str(port),
                                 "--no-auth"], url + "/v2/health/ready", env)))
        runs = {"one replica, direct": f"http://127.0.0.1:{ports[0]}"}
        one_url, one = balancer("haproxy-1", ports[:1], env)
        two_url, two = balancer("haproxy-2", ports, env)
        running.enter_context(one)  # type: ignore[arg-type]
        running.enter_context(two)  # type: ignore[arg-type]
        runs |= {"HAProxy, 1 replica": one_url, "HAProxy, 2 replicas": two_url}
        for label, url in runs.items():
            load = (url + "/predict/churn", body, serve_rest.JSON)
            serve_rest.wrk(load, 4, 2)  # warm up
            before = [(serve_rest.group_cpu(r.pid), *serve_rest.batched(f"http://127.0.0.1:{p}"))
                      for r, p in zip(replicas, ports)]
            results[label] = r = serve_rest.wrk(load, CONCURRENCY, args.seconds)
            spent = [[b - a for a, b in zip(was, (serve_rest.group_cpu(r.pid), *serve_rest.batched(f"http://127.0.0.1:{p}")))]
                     for was, r, p in zip(before, replicas, ports)]
            rows, calls = sum(s[1] for s in spent), sum(s[2] for s in spent)
            print(f"{label:<22} c={CONCURRENCY} {r['rps']:>8.0f} req/s   p50 {r['p50']:>7.2f} ms   "
                  f"p99 {r['p99']:>7.2f} ms   replicas: {rows / max(calls, 1):>4.1f} rows/call, "
                  f"{sum(s[0] for s in spent) / max(rows, 1) * 1e6:>4.0f} us CPU/request"
                  + (f"   non-2xx {r['errors']:.0f}" if r["errors"] else ""), flush=True)
        reached = promotion_reaches(Path(env["VALUELOOP_HOME"]), ports)
    direct = results["one replica, direct"]["rps"]
    for label in ("HAProxy, 1 replica", "HAProxy, 2 replicas"):
        ratio = results[label]["rps"] / direct
        print(f"{label}: {ratio:.2f}x direct ({(1 - ratio) * 100:+.1f}% overhead; goal under 15%)")
    print(f"a promotion reached both replicas in {reached:.2f} s (goal <= 2 s; each polls the registry every 1 s)")
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()

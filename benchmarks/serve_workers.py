"""Serving across cores, side by side: ``valueloop serve --workers 1`` then ``--workers 2`` on
serve_rest.py's model (a scikit-learn gradient boosting model, 20 numeric features, single-row
JSON records, prediction logging on). Nothing is pinned: the server's workers and wrk (2
threads) share this machine's cores, as issue 19 asks; the output says how many there are.
Prints req/s and p99 at concurrency 16 and 64 and the ratio of two workers to one (issue 19's
goal: >= 1.8x at c=64 on 2 cores).

Each run also says where the CPU went: the server's CPU per request (all its processes), wrk's,
how busy the machine was, and the mean rows per model call (the model's fixed cost per call,
~0.4 ms here, is shared by the rows of a batch, and each of two workers sees half the requests).
At c=64 it prints the cores each side used, and the most req/s the cores allow at two workers'
cost per request (server + wrk, who share the cores), as a ratio to one worker: on a quiet
machine, the ceiling of the goal's ratio. On a busy one, the machine column says 100% and the
ratios mean little: more processes win more of the other programs' CPU.

    python benchmarks/serve_workers.py               # ~1 minute
    python benchmarks/serve_workers.py --seconds 3   # a quick one
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import serve_rest  # noqa: E402  (its model, registration and wrk runner)

OUT = HERE / ".out" / "serve_workers"
CONCURRENCY = (16, 64)


def measured(load: serve_rest.Load, url: str, group: int, c: int, seconds: int) -> dict[str, float]:
    """One wrk run, with the CPU the server and wrk spent per request and the mean batch."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped meanwhile
    server, busy, rows = serve_rest.group_cpu(group), serve_rest.machine(), serve_rest.batched(url)
    r = serve_rest.wrk(load, c, seconds, f"0-{(os.cpu_count() or 1) - 1}", threads=2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server, busy, rows = serve_rest.group_cpu(group) - server, [b - a for a, b in zip(busy, serve_rest.machine())], \
        [b - a for a, b in zip(rows, serve_rest.batched(url))]
    answered = r["rps"] * seconds
    return r | {"server_us": server / answered * 1e6,
                "wrk_us": (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / answered * 1e6,
                "busy": busy[0] / busy[1], "batch": rows[0] / max(rows[1], 1)}


def main() -> None:
    args = serve_rest.wrk_arguments(__doc__)
    body, env = serve_rest.served_home(OUT)
    cores = os.cpu_count() or 1
    every_core = f"0-{cores - 1}"
    print(f"{cores} cores; the server's workers and wrk (2 threads) share all of them")
    results: dict[int, dict[int, dict[str, float]]] = {}
    for workers in (1, 2):
        port = serve_rest.free_port()
        url = f"http://127.0.0.1:{port}"
        with (OUT / f"workers-{workers}.log").open("wb") as log:
            proc = subprocess.Popen(["taskset", "-c", every_core, str(serve_rest.BIN / "valueloop"), "serve",
                                     "--port", str(port), "--no-auth", "--workers", str(workers)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            serve_rest.wait_ready(url + "/v2/health/ready", proc)
            load = (url + "/predict/churn", body, serve_rest.JSON)
            serve_rest.wrk(load, 8, 3, every_core, threads=2)  # warm up every worker
            results[workers] = {}
            for c in CONCURRENCY:
                results[workers][c] = r = measured(load, url, proc.pid, c, args.seconds)
                print(f"--workers {workers}  c={c:<3} {r['rps']:>8.0f} req/s   p50 {r['p50']:>7.2f} ms   "
                      f"p99 {r['p99']:>7.2f} ms   CPU/req: server {r['server_us']:>4.0f} us, wrk {r['wrk_us']:>3.0f} us"
                      f"   machine {r['busy']:>4.0%} busy   {r['batch']:>4.1f} rows/call"
                      + (f"   non-2xx {r['errors']:.0f}" if r["errors"] else ""), flush=True)
        finally:
            serve_rest.stop(proc)
    for c in CONCURRENCY:
        print(f"--workers 2 / --workers 1 at c={c}: {results[2][c]['rps'] / results[1][c]['rps']:.2f}x req/s"
              + ("  (goal >= 1.8x)" if c == 64 else ""))
    one, two = results[1][64], results[2][64]
    used = {w: (r["server_us"] * r["rps"] / 1e6, r["wrk_us"] * r["rps"] / 1e6) for w, r in ((1, one), (2, two))}
    most = cores * 1e6 / (two["server_us"] + two["wrk_us"])
    print(f"at c=64 one worker used {used[1][0]:.2f} cores and wrk {used[1][1]:.2f}; two workers {used[2][0]:.2f} and "
          f"wrk {used[2][1]:.2f} ({two['wrk_us'] / (two['server_us'] + two['wrk_us']):.0%} of the CPU). At two workers' "
          f"cost per request (server {two['server_us']:.0f} + wrk {two['wrk_us']:.0f} us; one worker's server "
          f"{one['server_us']:.0f} us), {cores} cores allow at most {most:.0f} req/s, {most / one['rps']:.2f}x one worker")
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()

"""Serving across cores, side by side: ``valueloop serve --workers 1`` then ``--workers 2`` on
serve_rest.py's model (a scikit-learn gradient boosting model, 20 numeric features, single-row
JSON records, prediction logging on). Nothing is pinned: the server's workers and wrk (2
threads) share this machine's cores, as issue 19 asks; the output says how many there are.
Prints req/s and p99 at concurrency 16 and 64 and the ratio of two workers to one (issue 19's
goal: >= 1.8x at c=64 on 2 cores).

    python benchmarks/serve_workers.py               # ~1 minute
    python benchmarks/serve_workers.py --seconds 3   # a quick one
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import serve_rest  # noqa: E402  (its model, registration and wrk runner)

OUT = HERE / ".out" / "serve_workers"
CONCURRENCY = (16, 64)


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
                results[workers][c] = r = serve_rest.wrk(load, c, args.seconds, every_core, threads=2)
                print(f"--workers {workers}  c={c:<3} {r['rps']:>8.0f} req/s   p50 {r['p50']:>7.2f} ms   "
                      f"p99 {r['p99']:>7.2f} ms" + (f"   non-2xx {r['errors']:.0f}" if r["errors"] else ""),
                      flush=True)
        finally:
            serve_rest.stop(proc)
    for c in CONCURRENCY:
        print(f"--workers 2 / --workers 1 at c={c}: {results[2][c]['rps'] / results[1][c]['rps']:.2f}x req/s"
              + ("  (goal >= 1.8x)" if c == 64 else ""))
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()

"""Console page benchmark: the server time of every page on a workspace at scale.

It seeds a workspace the way the loop fills one: ``valueloop demo`` makes the use case ``churn``;
nine more use cases (``churn1`` … ``churn9``) are formulated, approved, ingested and trained twice
through the same service functions (20+ registered model versions in all); then 1,000,000
predictions are written to the prediction log (100,000 per use case over the last 48 hours) and
the monitor stores its hourly windows. Then every page of the console (HTML and its JSON twin)
is requested through the real application in process, signed in as a member, and the server
time per page is printed as p50 / p95 over the repeats. Goal: every page under 300 ms at p95.

    python benchmarks/ui_pages.py                       # seed (a few minutes) and measure
    python benchmarks/ui_pages.py --repeat 50 --reuse   # measure again on the seeded workspace
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from valueloop.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent
WORKSPACE = ROOT / ".data" / "ui_pages"
USECASES = 10
PREDICTIONS = 1_000_000
HOURS = 48
WINDOW = {"every": "1h"}
FEATURES = ["birth_date", "postcode", "contract", "payment_method", "tenure_months", "monthly_charges",
            "support_calls", "total_charges"]


def _clone_spec(spec: dict, name: str) -> dict:
    operate = dict(spec.get("operate") or {}) | {"window": WINDOW}
    return spec | {"name": name, "title": f"{spec['title']} ({name})", "operate": operate}


def seed(workspace: Path) -> None:
    """The demo, nine more use cases trained twice each, a million predictions, their windows."""
    from rich.console import Console

    from valueloop import demo
    from valueloop.data import service as data
    from valueloop.learn import registry, training
    from valueloop.operate.monitor import run_monitor
    from valueloop.outcomes import privacy, usecases
    from valueloop.outcomes.lifecycle import State
    from valueloop.outcomes.spec import ColumnTreatment, parse_spec
    from valueloop.store import session

    started = time.perf_counter()
    demo.run(Console(quiet=True), workspace)
    settings = load_settings({"VALUELOOP_HOME": str(workspace)})
    with session(settings) as s:
        churn = usecases.get_usecase(s, "churn")
        base = usecases.spec_of(churn).model_dump(mode="json", by_alias=True)
        project = data.get_version(s, "churn").project_dir
    condition = ColumnTreatment(column="postcode", treatment="generalize", params={"prefix": 2})
    names = [f"churn{i}" for i in range(1, USECASES)]
    for name in names:
        spec = parse_spec(_clone_spec(base, name) | {"operate": None})
        with session(settings) as s:
            usecases.create_usecase(s, "olivia", spec)
            usecases.advance(s, "ana", name, State.formulated)
            privacy.submit(s, "olivia", name)
        with session(settings) as s:
            privacy.approve(s, "pia", name, [condition], "approved for the benchmark")
            usecases.advance(s, "olivia", name, State.in_development)
        with session(settings) as s:
            data.ingest(s, settings, "dave", name, project_dir=project)
        for turn in range(2):
            with session(settings) as s:
                report = training.train(s, settings, "dana", name, candidates=["logistic"])
            if report.registered is not None and turn == 0:
                with session(settings) as s:
                    registry.accept(s, "olivia", name, report.registered.version, accepted=True, comment="benchmark")
                    registry.promote(s, settings, "dana", name, report.registered.version)
        full = _clone_spec(base, name)
        owners = full | {"operate": full["operate"] | {"retrain": {k: v for k, v in full["operate"]["retrain"].items()
                                                                   if k != "triggers"}}}
        for actor, changed in (("olivia", owners), ("oscar", full)):  # each field by the role it belongs to
            with session(settings) as s:
                usecases.update_usecase(s, actor, parse_spec(changed))
        print(f"  seeded {name} ({time.perf_counter() - started:.0f} s)", flush=True)
    with session(settings) as s:  # churn's windows hourly too, like the others
        usecases.update_usecase(s, "olivia", parse_spec(_clone_spec(base, "churn")))
    _predictions(settings, ["churn", *names])
    for name in ["churn", *names]:
        run_monitor(settings, "oscar", name)
    print(f"seeded {USECASES} use cases, {PREDICTIONS:,} predictions in {time.perf_counter() - started:.0f} s")


def _predictions(settings: Settings, names: list[str]) -> None:
    """``PREDICTIONS`` rows spread over the last ``HOURS`` hours, drawn from churn's features."""
    import numpy as np
    import pyarrow as pa

    from valueloop.data.service import read_version
    from valueloop.deploy.predlog import PredictionLog
    from valueloop.store import session

    with session(settings) as s:  # the treated, transformed features the model is served
        features = read_version(s, "churn").select(FEATURES)
    rng = np.random.default_rng(7)
    per = PREDICTIONS // len(names)
    now = datetime.now(UTC)
    for name in names:
        pick = rng.integers(0, features.num_rows, per)
        table = features.take(pa.array(pick))
        seconds = np.sort(rng.uniform(0, HOURS * 3600, per))
        ts = [now - timedelta(seconds=float(s)) for s in seconds[::-1]]
        probability = rng.uniform(0, 1, per)
        table = table.append_column("request_id", pa.array([f"{name}-{i}" for i in range(per)]))
        table = table.append_column("ts", pa.array(ts, pa.timestamp("us", tz="UTC")))
        table = table.append_column("model_version", pa.array(["1"] * per))
        table = table.append_column("latency_seconds", pa.array(rng.gamma(2.0, 0.002, per)))
        table = table.append_column("prediction", pa.array((probability >= 0.5).astype(np.int64)))
        table = table.append_column("probability", pa.array(probability))
        PredictionLog(settings, name).append(table, source="rest")


#: each page, the user who looks at it, and its paths (``{u}``: a use case)
PAGES = [("inbox", "olivia", "/"), ("usecase", "olivia", "/usecases/{u}"),
         ("privacy", "pia", "/usecases/{u}/privacy"), ("data", "dave", "/usecases/{u}/data"),
         ("models", "dana", "/usecases/{u}/models"), ("deploy", "oscar", "/usecases/{u}/deploy"),
         ("operate", "oscar", "/usecases/{u}/operate"), ("audit", "olivia", "/audit?usecase={u}"),
         ("admin", "admin", "/admin")]


def _address(path: str, twin: bool) -> str:
    """The page's address, or its JSON twin's (``/audit.json?usecase=churn``)."""
    path, _, query = path.partition("?")
    if twin:
        path = (path.rstrip("/") or "/index") + ".json"
    return path + (f"?{query}" if query else "")


def measure(workspace: Path, repeat: int) -> None:
    """Each page (HTML and its JSON twin) ``repeat`` times per use case through the whole app in
    process, signed in; the server time is the request's time, rendering included."""
    from fastapi.testclient import TestClient

    from sqlalchemy import func, select

    from valueloop.console.web import SESSION_COOKIE
    from valueloop.learn.tables import ModelVersion
    from valueloop.outcomes import users
    from valueloop.security.sessions import sign_in
    from valueloop.server.app import create_app
    from valueloop.store import session

    settings = load_settings({"VALUELOOP_HOME": str(workspace)})
    secrets = {}
    with session(settings) as s:
        versions = s.scalar(select(func.count()).select_from(ModelVersion))
        for user in {u for _, u, _ in PAGES}:
            users.set_password(s, "admin", user, f"benchmark-{user}-secret")
            secrets[user] = sign_in(s, name=user, password=f"benchmark-{user}-secret").secret
    names = ["churn", *(f"churn{i}" for i in range(1, USECASES))]
    with TestClient(create_app(settings)) as client:
        client.get("/", cookies={SESSION_COOKIE: secrets["olivia"]})  # the process warms up once
        print(f"{len(names)} use cases, {versions} model versions; load average {_load()}")
        print(f"{'page':<10} {'twin':<5} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for page, user, path in PAGES:
            for twin in ("", ".json"):
                times = []
                for _ in range(repeat):
                    for name in names:
                        url = _address(path.format(u=name), bool(twin))
                        started = time.perf_counter()
                        answer = client.get(url, cookies={SESSION_COOKIE: secrets[user]})
                        times.append((time.perf_counter() - started) * 1000)
                        assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
                times.sort()
                p95 = times[max(0, int(len(times) * 0.95) - 1)]
                print(f"{page:<10} {'json' if twin else 'html':<5} {len(times):>8} "
                      f"{statistics.median(times):>8.1f} {p95:>8.1f} {times[-1]:>8.1f}", flush=True)
        print(f"load average {_load()} (the machine's, during the measurement)")


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=WORKSPACE)
    parser.add_argument("--repeat", type=int, default=20, help="requests of each page per use case")
    parser.add_argument("--reuse", action="store_true", help="measure the workspace seeded before")
    args = parser.parse_args()
    if not args.reuse:
        shutil.rmtree(args.workspace, ignore_errors=True)
        seed(args.workspace)
    measure(args.workspace, args.repeat)


if __name__ == "__main__":
    main()

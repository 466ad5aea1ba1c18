"""Demo chapter 4, Deploy: the champion served over REST (the Open Inference Protocol, MLflow's
scoring protocol and plain JSON) by a real server on loopback; a bad request is refused by
name; a second version is trained, promoted and rolled back while traffic flows, and not one
request fails; then the server's Prometheus metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from valueloop.demo import DemoContext
from valueloop.store import session

REQUEST = {"birth_date": 1979, "postcode": "35", "contract": "month-to-month", "payment_method": "invoice",
           "tenure_months": 4, "monthly_charges": 89.5, "support_calls": 5, "total_charges": 358.0}
#: the same customer as the CRM exports it: the model version's pipeline makes REQUEST of it
RAW = {"customer_id": 90001, "name": "Anna Bakker", "email": "anna.bakker90001@example.com", "birth_date": "1979-03-14",
       "postcode": "3512AB", "contract": "month-to-month", "payment_method": "invoice", "tenure_months": 4,
       "monthly_charges": 89.5, "support_calls": 5}


def _champion_is(client: Any, version: int) -> bool:
    return any(m["name"] == "churn" and m.get("champion") == str(version) for m in client.get("/models").json())


def _wait(check: Any) -> None:
    for _ in range(600):
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError("the server did not pick up the change")


def run(ctx: DemoContext) -> None:
    import httpx

    from valueloop.deploy.local import serve_locally
    from valueloop.deploy.rollback import rollback
    from valueloop.learn import registry, training
    from valueloop.outcomes.users import create_token

    out, settings = ctx.console, ctx.settings
    ctx.chapter("Deploy: serve the champion over REST, swap versions under traffic, roll back")
    local = serve_locally(settings, poll_seconds=0.25)
    url = local.url
    with session(settings) as s:
        token = create_token(s, "devon", "demo-app").token
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    try:
        out.print(f"valueloop serve is up at {url}; devon's application calls it with a bearer token")
        answered = client.post("/predict/churn", json=REQUEST)
        plain = answered.json()
        out.print(f"  POST /predict/churn → churn {plain['predictions'][0]} (probability "
                  f"{plain['probabilities'][0]:.2f}), model v{plain['model_version']}, request {plain['request_id'][:8]}…")
        out.print(f"    X-AI-Transparency: {answered.headers.get('x-ai-transparency')}")
        raw = client.post("/predict/churn", json=RAW).json()
        out.print(f"  POST /predict/churn with the customer's CRM record as exported (name, e-mail, birth date, "
                  f"postcode) → probability {raw['probabilities'][0]:.2f}: the version's pipeline treated it as "
                  "the ingest did, and only the treated features reached the log")
        mlflow = client.post("/invocations/churn", json={"dataframe_records": [REQUEST]}).json()
        out.print(f"  POST /invocations/churn (MLflow dataframe_records) → {mlflow['predictions']}")
        tensors = [{"name": k, "shape": [1], "data": [v],
                    "datatype": "BYTES" if isinstance(v, str) else "INT64" if isinstance(v, int) else "FP64"}
                   for k, v in REQUEST.items()]
        oip = client.post("/v2/models/churn/infer", json={"id": "demo-1", "inputs": tensors}).json()
        out.print("  POST /v2/models/churn/infer (Open Inference Protocol) → "
                  + ", ".join(f"{o['name']} {o['data']}" for o in oip["outputs"]))
        refused = client.post("/predict/churn", json=REQUEST | {"contract": "lifetime", "support_calls": "many"})
        out.print(f"  a bad request → {refused.status_code}: " + "; ".join(refused.json()["error"]["problems"]))
        out.print(f"  without a token → {httpx.post(url + '/predict/churn', json=REQUEST).status_code}")

        with session(settings) as s:
            report = training.train(s, settings, "dana", "churn", candidates=["logistic"])
        if report.registered is None:
            raise RuntimeError("the second version did not pass its tests")
        second, first = report.registered.version, ctx.state["model_version"]
        with session(settings) as s:
            registry.accept(s, "olivia", "churn", second, accepted=True, comment="simpler, as good for the team")
        out.print(f"dana trained v{second} (logistic) and olivia accepted it")

        stop, answered = threading.Event(), Counter()

        def traffic() -> None:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
                while not stop.is_set():
                    r = c.post("/predict/churn", json=REQUEST)
                    answered[(r.status_code, r.json().get("model_version"))] += 1

        senders = [threading.Thread(target=traffic) for _ in range(4)]
        for t in senders:
            t.start()
        try:
            time.sleep(0.5)
            with session(settings) as s:
                registry.promote(s, settings, "dana", "churn", second)
            _wait(lambda: _champion_is(client, second))
            out.print(f"dana promoted v{second}: the running server loaded, verified and warmed it, then swapped")
            time.sleep(0.5)
            with session(settings) as s:
                back = rollback(s, settings, "oscar", "churn")
            _wait(lambda: _champion_is(client, first))
            out.print(f"oscar rolled back: `valueloop rollback churn` gave the champion back to v{back.champion}")
            time.sleep(0.5)
        finally:
            stop.set()
            for t in senders:
                t.join()
        failed = sum(n for (status, _), n in answered.items() if status != 200)
        by_version = Counter({v: n for (status, v), n in answered.items() if status == 200})
        out.print(f"during the swaps: {sum(answered.values())} requests, {failed} failed; answered by "
                  + ", ".join(f"v{v}: {n}" for v, n in sorted(by_version.items())))

        metrics = client.get("/metrics").text.splitlines()
        out.print("from /metrics:")
        for line in metrics:
            if line.startswith(("valueloop_requests_total{", "valueloop_model_swaps_total{",
                                "valueloop_batch_size_count", "valueloop_request_duration_seconds_count")):
                out.print(f"  {line}")
    finally:
        client.close()
        local.stop()

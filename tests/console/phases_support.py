"""The seeded workspace of the phase pages' browser tests: ``retention`` (in production after
:func:`console_support.seed_outcomes`) ingested twice, trained twice (v1 accepted and champion,
v2 waiting for the owner with the note why it is not compiled), a day of predictions with some
labels, and the monitor's stored windows with an open alert; all through the services the CLI calls."""

from __future__ import annotations

import dataclasses
import shutil

from valueloop.config import Settings

USECASE = "retention"
FAST = [{"name": "logistic", "kind": "logistic", "baseline": True},
        {"name": "lightgbm", "kind": "lightgbm", "params": {"n_estimators": 20}}]
#: a bound on prediction time that no busy runner misses: the seed must register its models
UNTIMED = {"max_seconds_per_row": 60.0}
#: windows of 300 predictions, and a rule that fires on any drift at all
MONITORING = {"window": {"rows": 300},
              "alerts": [{"name": "data_drift", "metric": "dataset_drift_share", "comparator": ">=",
                          "threshold": 0.0, "routes": ["log"]}]}
FEATURES = ["birth_date", "postcode", "contract", "payment_method", "tenure_months", "monthly_charges",
            "support_calls", "total_charges"]
PREDICTIONS = 900


def seed_phases(settings: Settings) -> None:
    import numpy as np
    import pyarrow as pa

    from valueloop.data import service as data
    from valueloop.deploy.labels import record_feedback
    from valueloop.deploy.predlog import PredictionLog
    from valueloop.examples import example_dir, load_generator
    from valueloop.learn import registry, training
    from valueloop.operate.monitor import run_monitor
    from valueloop.outcomes.spec import parse_spec
    from valueloop.outcomes.usecases import get_usecase, update_usecase
    from valueloop.store import session

    project = settings.home / "projects" / USECASE
    shutil.copytree(example_dir("churn"), project, ignore=shutil.ignore_patterns("data", "__pycache__"))
    spec = get_spec(settings)
    spec["model"] = spec["model"] | {"candidates": FAST, "tests": spec["model"]["tests"] | UNTIMED}
    with session(settings) as s:
        update_usecase(s, "ana", parse_spec(spec))
    synthetic = dataclasses.replace(settings, allow_development_key=True)  # generated customers only
    for seed in (7, 8):  # two exports, two versions to compare
        load_generator("churn").write(project / "data", 1200, seed)
        with session(settings) as s:
            data.ingest(s, synthetic, "dave", USECASE, project_dir=project, mode="overwrite")
    with session(settings) as s:
        first = training.train(s, settings, "dana", USECASE).registered
    assert first is not None
    with session(settings) as s:
        registry.accept(s, "olivia", USECASE, first.version, accepted=True, comment="meets the goal")
        registry.promote(s, settings, "dana", USECASE, first.version)
    with session(settings) as s:  # v2 asks for native code, which a logistic model gets a note for
        spec = get_usecase(s, USECASE).spec
        update_usecase(s, "ana", parse_spec(spec | {"model": spec["model"] | {"compile": True}}))
    with session(settings) as s:
        second = training.train(s, settings, "dana", USECASE, candidates=["logistic"]).registered
    assert second is not None
    with session(settings) as s:
        spec = get_usecase(s, USECASE).spec
        update_usecase(s, "olivia", parse_spec(spec | {"operate": MONITORING}))
        rows = data.read_version(s, USECASE).select(FEATURES).slice(0, PREDICTIONS)
    rng = np.random.default_rng(3)
    probability = rng.uniform(0, 1, PREDICTIONS)
    ids = [f"r-{i}" for i in range(PREDICTIONS)]
    log = rows.append_column("request_id", pa.array(ids)).append_column(
        "model_version", pa.array([str(first.version)] * PREDICTIONS)).append_column(
        "latency_seconds", pa.array(rng.gamma(2.0, 0.002, PREDICTIONS))).append_column(
        "prediction", pa.array((probability >= 0.5).astype(np.int64))).append_column(
        "probability", pa.array(probability))
    PredictionLog(settings, USECASE).append(log, source="rest")
    record_feedback(settings, "devon", USECASE, [(i, int(rng.integers(0, 2))) for i in ids[:600]])
    run_monitor(settings, "oscar", USECASE)


def get_spec(settings: Settings) -> dict:
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.store import session

    with session(settings) as s:
        return dict(get_usecase(s, USECASE).spec)

"""What the Operate tests share (``from operate.support import ...``): the use case's operate
section, a month of CRM data, the drift reference, and logged traffic."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from deploy_support import UNTIMED
from outcomes.support import churn_data, update_as_team

from valueloop.config import Settings
from valueloop.examples import load_generator
from valueloop.outcomes.usecases import get_usecase, spec_of
from valueloop.store import session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_operate(settings: Settings, operate: dict[str, Any], name: str = "churn", **model: Any) -> None:
    """Replace the use case's operate section (and parts of its model section), each field by
    the role it belongs to."""
    with session(settings) as s:
        spec = spec_of(get_usecase(s, name)).model_dump(mode="json", by_alias=True)
    spec["operate"] = operate
    spec["model"] |= model
    update_as_team(settings, spec)


def write_month(project: Path, rows: int, seed: int, period: int) -> None:
    """The CRM export the next ingest reads."""
    (project / "data").mkdir(exist_ok=True)
    pacsv.write_csv(load_generator("churn").generate(rows, seed, period), project / "data" / "customers.csv")


#: train the logistic baseline only, with a prediction-time bound no busy machine misses
ONLY_BASELINE = {"candidates": [{"name": "logistic", "kind": "logistic", "baseline": True}],
                 "tests": churn_data()["model"]["tests"] | UNTIMED}


def prepare_reference(settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> Path:
    """churn with dataset version 0 (period 0) as its drift reference, no model yet."""
    from valueloop.data import ingest

    name, project = approved_usecase(settings)
    write_month(project, 3000, 7, 0)
    with session(settings) as s:
        ingest(s, settings, "dave", name, project_dir=project)
    return project


def requests_of(raw: pa.Table) -> pa.Table:
    """The features of raw CRM records as the champion's pipeline makes them (birth year, postcode
    region, total charges), for logs made without a model."""
    import pyarrow.compute as pc

    return pa.table({
        "birth_date": pc.cast(pc.utf8_slice_codeunits(raw["birth_date"], 0, 4), pa.int64()),
        "postcode": pc.utf8_slice_codeunits(raw["postcode"], 0, 2),
        "contract": raw["contract"],
        "payment_method": raw["payment_method"],
        "tenure_months": raw["tenure_months"],
        "monthly_charges": raw["monthly_charges"],
        "support_calls": raw["support_calls"],
        "total_charges": pc.round(pc.multiply(raw["monthly_charges"], pc.cast(raw["tenure_months"], pa.float64())), 2),
    })


@dataclass
class Traffic:
    ids: list[str]
    truth: list[int]
    table: pa.Table


def log_traffic(settings: Settings, rows: int, seed: int, period: int, *, ts: Any = None,
                drop: tuple[str, ...] = ()) -> Traffic:
    """A month of requests logged as served, with a made-up but calibrated-looking probability
    (the monitor needs no model to watch the inputs)."""
    from valueloop.deploy.predlog import PredictionLog

    raw = load_generator("churn").generate(rows, seed, period)
    inputs = requests_of(raw).drop_columns(list(drop))
    rng = np.random.default_rng(seed)
    truth = raw["churned"].to_pylist()
    probability = np.clip(np.asarray(truth) * 0.5 + rng.random(rows) * 0.5, 0, 1)
    ids = [uuid.uuid4().hex for _ in range(rows)]
    table = inputs.append_column("request_id", pa.array(ids)).append_column(
        "model_version", pa.array(["1"] * rows)).append_column(
        "prediction", pa.array((probability >= 0.5).astype(int))).append_column(
        "probability", pa.array(probability)).append_column("latency_seconds", pa.array(rng.random(rows) / 50))
    if ts is not None:
        table = table.append_column("ts", pa.array([ts] * rows, pa.timestamp("us", tz="UTC")))
    PredictionLog(settings, "churn").append(table, source="rest")
    return Traffic(ids=ids, truth=truth, table=table)



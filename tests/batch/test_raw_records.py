"""One pipeline from raw record to prediction: the model version carries what its training data
went through (the DPIA's treatments, the row-level transform), and applies it to every raw record
that REST, batch and stream score. Scoring the raw CRM export gives exactly the predictions of
scoring the treated dataset version, and no raw birth date, postcode or e-mail reaches the log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import redis

from valueloop.config import Settings
from valueloop.deploy.batch import BatchOptions, run_batch
from valueloop.deploy.stream import StreamOptions, consume, send_events, stream_names


def _export(settings: Settings) -> Path:
    """The CRM export the newest dataset version was ingested from, as the source system wrote it."""
    from valueloop.data import get_version
    from valueloop.store import session

    with session(settings) as s:
        return Path(get_version(s, "churn", None).project_dir) / "data" / "customers.csv"


def _scores(path: Path) -> pa.Table:
    return pq.read_table(path).sort_by("customer_id")


def _no_personal_data(logged: pa.Table) -> None:
    assert "name" not in logged.column_names and "email" not in logged.column_names
    assert set(logged["birth_date"].to_pylist()) <= set(range(1900, 2027))
    assert {len(p) for p in logged["postcode"].to_pylist()} == {2}
    for column in logged.columns:
        texts = [v for v in column.to_pylist() if isinstance(v, str)]
        assert not [v for v in texts if "@" in v or re.fullmatch(r"\d{4}-\d{2}-\d{2}", v)], column


def test_raw_export_by_batch_rest_and_stream_scores_exactly_as_the_treated_version(
        settings: Settings, champion: str, redis_url: str, tmp_path: Path, run_cli) -> None:
    from valueloop.deploy.local import serve_locally
    from valueloop.deploy.predlog import PredictionLog

    export = _export(settings)
    run_batch(settings, "devon", champion, "churn@latest", str(tmp_path / "treated.parquet"),
              BatchOptions(log_predictions=False))
    treated = _scores(tmp_path / "treated.parquet")
    cli = run_cli(settings, "batch", champion, "--input", str(export), "--output", str(tmp_path / "raw.parquet"),
                  as_user="devon")
    assert cli.returncode == 0, cli.stderr
    raw = _scores(tmp_path / "raw.parquet")
    assert raw["customer_id"].to_pylist() == treated["customer_id"].to_pylist()
    np.testing.assert_array_equal(raw["probability"].to_numpy(), treated["probability"].to_numpy())
    np.testing.assert_array_equal(raw["prediction"].to_numpy(), treated["prediction"].to_numpy())

    records = pacsv.read_csv(export, convert_options=pacsv.ConvertOptions(column_types={
        "birth_date": pa.string(), "postcode": pa.string()})).drop_columns(["churned"]).slice(0, 60).to_pylist()
    expected = dict(zip(treated["customer_id"].to_pylist(), treated["probability"].to_pylist(), strict=True))
    local = serve_locally(settings, auth=False)
    try:
        answer = httpx.post(local.url + "/predict/churn", json=records, timeout=60)
        one = httpx.post(local.url + "/invocations/churn", json={"dataframe_records": records[:1]}, timeout=60)
    finally:
        local.stop()
    assert answer.status_code == 200, answer.text
    assert answer.json()["probabilities"] == [expected[r["customer_id"]] for r in records]
    assert one.status_code == 200, one.text

    client = redis.Redis.from_url(redis_url)
    ids = send_events(client, champion, records)
    bad = send_events(client, champion, [records[0] | {"contract": "lifetime"}, records[1] | {"birth_date": "yesterday"}])
    consume(settings, "oscar", champion, StreamOptions(redis_url=redis_url, batch_size=25, block_ms=20, idle_exit=1.0))
    out = {f[b"event_id"].decode(): float(f[b"probability"]) for _, f in client.xrange(stream_names(champion)[1])}
    assert [out[i] for i in ids] == [expected[r["customer_id"]] for r in records]
    letters = {f[b"event_id"].decode(): f[b"reason"].decode() for _, f in client.xrange(stream_names(champion)[2])}
    assert set(letters) == set(bad)
    assert "[0].contract: unknown category; known: month-to-month, one_year, two_year, got 'lifetime'" in letters[bad[0]]
    assert "[0].birth_date: expected an ISO 8601 date or date-time, got 'yesterday'" in letters[bad[1]]

    logged = PredictionLog(settings, champion).read()
    assert sorted(set(logged["source"].to_pylist())) == ["batch", "rest", "stream"]
    _no_personal_data(logged)


def test_a_raw_record_is_checked_by_its_sourceʼs_types_and_the_modelʼs_rules(
        settings: Settings, champion: str, tmp_path: Path) -> None:
    from valueloop.deploy.local import serve_locally

    record = pacsv.read_csv(_export(settings), convert_options=pacsv.ConvertOptions(column_types={
        "birth_date": pa.string(), "postcode": pa.string()})).slice(0, 1).to_pylist()[0]
    local = serve_locally(settings, auth=False, log_predictions=False)
    try:
        meta = httpx.get(local.url + "/v2/models/churn").json()
        bad_date = httpx.post(local.url + "/predict/churn", json=record | {"birth_date": "yesterday"})
        unknown = httpx.post(local.url + "/predict/churn", json=record | {"contract": "lifetime"})
        stranger = httpx.post(local.url + "/predict/churn", json=record | {"shoe_size": 44})
    finally:
        local.stop()
    raw = meta["parameters"]["raw_record"]
    assert {f["name"] for f in raw["fields"]} >= {"customer_id", "name", "email", "birth_date", "postcode"}
    assert raw["treatments"] == {"birth_date": "generalize", "email": "pseudonymize", "name": "drop",
                                 "postcode": "generalize"}
    assert bad_date.status_code == 422 and "[0].birth_date: expected an ISO 8601" in bad_date.text
    assert unknown.status_code == 422 and "[0].contract: unknown category" in unknown.text
    assert stranger.status_code == 422 and "[0].shoe_size: unknown field" in stranger.text
    assert json.dumps(record["email"]) not in bad_date.text + unknown.text

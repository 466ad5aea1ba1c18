"""One contract for every transport: REST, batch and stream hold a record to the same rules (a
record REST refuses is dead-lettered with REST's message, a batch row too fails its job with it),
give the same answer, and put every prediction in the prediction log with its source; a stream
consumer follows promotions and rollbacks of its alias, as REST servers do."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import redis
import deploy_support

from valueloop.config import Settings
from valueloop.deploy.stream import StreamOptions, consume, send_events, stream_names
from valueloop.errors import InvalidInput

#: changes to a good record that REST refuses with 422
BAD = [{"tenure_months": 2.5}, {"contract": "lifetime"}, {"monthly_charges": None}, {"support_calls": "many"}]


def _features(settings: Settings, rows: int) -> list[dict[str, Any]]:
    """The first ``rows`` rows of the newest dataset version, as the model's features."""
    from valueloop.data import read_version
    from valueloop.learn.registry import load_model
    from valueloop.store import session

    with session(settings) as s:
        names = load_model(s, settings, "churn", "champion").metadata.get_input_schema().input_names()
        return read_version(s, "churn").select(names).slice(0, rows).to_pylist()


def _wait(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def _stream_until_idle(settings: Settings, redis_url: str, **options: Any) -> None:
    consume(settings, "oscar", "churn", StreamOptions(redis_url=redis_url, batch_size=50, block_ms=20,
                                                      idle_exit=1.0, **options))


def test_a_record_rest_refuses_is_dead_lettered_with_restʼs_message(settings: Settings, champion: str,
                                                                     redis_url: str) -> None:
    from valueloop.deploy.local import serve_locally

    good = _features(settings, 1)[0]
    local = serve_locally(settings, auth=False, log_predictions=False)
    try:
        refusals = [httpx.post(local.url + "/predict/churn", json=good | change, timeout=30) for change in BAD]
    finally:
        local.stop()
    assert [r.status_code for r in refusals] == [422] * len(BAD)

    client = redis.Redis.from_url(redis_url)
    inp, out, dead = stream_names(champion)
    sent = [client.xadd(inp, {"data": json.dumps(good | change)}).decode() for change in BAD]
    scored = send_events(client, champion, [good])
    _stream_until_idle(settings, redis_url)
    letters = {f[b"event_id"].decode(): f[b"reason"].decode() for _, f in client.xrange(dead)}
    assert set(letters) == set(sent)
    for event_id, answer in zip(sent, refusals, strict=True):
        error = answer.json()["error"]
        assert letters[event_id].endswith(f"{error['message']}: {'; '.join(error['problems'])}"), letters[event_id]
    assert [f[b"event_id"].decode() for _, f in client.xrange(out)] == scored


def test_a_batch_row_rest_would_refuse_fails_the_job_with_restʼs_message(settings: Settings, champion: str,
                                                                        churn_parquet: Path, tmp_path: Path) -> None:
    from valueloop.deploy.batch import BatchOptions, run_batch

    table = pq.read_table(churn_parquet)
    contract = table["contract"].to_pylist()
    contract[7] = "lifetime"
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("contract"), "contract", pa.array(contract)), bad)
    with pytest.raises(InvalidInput) as refused:
        run_batch(settings, "devon", champion, str(bad), str(tmp_path / "out.parquet"), BatchOptions())
    assert refused.value.problems == [
        "[7].contract: unknown category; known: month-to-month, one_year, two_year, got 'lifetime'"]


def test_rest_batch_and_stream_give_the_same_answers_and_all_reach_the_log(
        settings: Settings, champion: str, churn_parquet: Path, redis_url: str, tmp_path: Path) -> None:
    from valueloop.deploy.batch import BatchOptions, run_batch
    from valueloop.deploy.local import serve_locally
    from valueloop.deploy.predlog import PredictionLog

    rows = _features(settings, 40)
    local = serve_locally(settings, auth=False)
    try:
        rest = httpx.post(local.url + "/predict/churn", json=rows, timeout=30).json()
    finally:
        local.stop()
    subset = tmp_path / "subset.parquet"
    pq.write_table(pq.read_table(churn_parquet).slice(0, 40), subset)
    job = run_batch(settings, "devon", champion, str(subset), str(tmp_path / "out.parquet"), BatchOptions())
    batch = pq.read_table(tmp_path / "out.parquet")
    client = redis.Redis.from_url(redis_url)
    ids = send_events(client, champion, rows)
    _stream_until_idle(settings, redis_url)
    stream = {f[b"event_id"].decode(): float(f[b"probability"]) for _, f in client.xrange(stream_names(champion)[1])}

    np.testing.assert_allclose(batch["probability"].to_numpy(), rest["probabilities"], rtol=1e-12)
    np.testing.assert_allclose([stream[i] for i in ids], rest["probabilities"], rtol=1e-12)

    logged = PredictionLog(settings, champion).read()
    by_source = {s: logged.filter(pc.equal(logged["source"], s)) for s in ("rest", "batch", "stream")}
    assert {s: t.num_rows for s, t in by_source.items()} == {"rest": 40, "batch": 40, "stream": 40}
    from_batch = by_source["batch"].sort_by("request_id")
    expected = sorted(f"{job.id}/{c}" for c in batch["customer_id"].to_pylist())
    assert from_batch["request_id"].to_pylist() == expected
    features = [n for n in rows[0]]
    assert sorted(from_batch.select(features).to_pylist(), key=str) == sorted(rows, key=str)


def test_a_stream_consumer_follows_promotions_and_rollbacks(settings: Settings, champion: str,
                                                            redis_url: str) -> None:
    from valueloop.deploy.rollback import rollback
    from valueloop.store import session

    second = deploy_support.train_version(settings, None)
    client = redis.Redis.from_url(redis_url)
    out = stream_names(champion)[1]
    rows = _features(settings, 5)
    stop = threading.Event()
    options = StreamOptions(redis_url=redis_url, batch_size=10, block_ms=20, poll_seconds=0.1)
    worker = threading.Thread(target=consume, args=(settings, "oscar", champion, options, stop))
    worker.start()

    def answered_by(version: str) -> bool:
        ids = set(send_events(client, champion, rows))
        time.sleep(0.3)
        return {f[b"model_version"].decode() for _, f in client.xrange(out) if f[b"event_id"].decode() in ids} \
            == {version}

    try:
        _wait(lambda: answered_by("1"), 60, "the champion v1 scores")
        deploy_support.promote_version(settings, second)
        _wait(lambda: answered_by(str(second)), 60, f"the stream follows the promotion of v{second}")
        with session(settings) as s:
            rollback(s, settings, "oscar", champion)
        _wait(lambda: answered_by("1"), 60, "the stream follows the rollback to v1")
    finally:
        stop.set()
        worker.join(30)

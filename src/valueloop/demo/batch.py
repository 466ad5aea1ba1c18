"""Demo chapter, Deploy in bulk and in real time: batch-score the raw CRM export with the champion
(its pipeline treats each record as ingest did), then stream a burst of raw records through one
consumer of a Redis Stream."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from valueloop.demo import DemoContext

BURST = 20_000


@contextmanager
def _redis(ctx: DemoContext) -> Iterator[str]:
    """VALUELOOP_REDIS_URL when it answers, else the home's private server for the chapter."""
    import redis

    from valueloop.deploy.redis_server import home_redis_server

    given = os.environ.get("VALUELOOP_REDIS_URL")
    if given:
        try:
            redis.Redis.from_url(given, socket_connect_timeout=2).ping()
            ctx.console.print(f"streaming through Redis at {given} (VALUELOOP_REDIS_URL)")
            yield given
            return
        except redis.RedisError as exc:
            ctx.console.print(f"[yellow]VALUELOOP_REDIS_URL={given} does not answer ({exc})[/yellow]")
    with home_redis_server(ctx.settings.home) as url:
        ctx.console.print(f"streaming through the home's private Redis-compatible server at {url} "
                          "(VALUELOOP_REDIS_URL unset; valueloop starts it, and stops it at the chapter's end)")
        yield url


def _batch(ctx: DemoContext) -> list[dict[str, Any]]:
    """Score the CRM export as the source system wrote it; returns its records for the stream."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from valueloop.deploy.batch import BatchOptions, run_batch
    from valueloop.deploy.predlog import PredictionLog

    out, settings = ctx.console, ctx.settings
    export = ctx.state["project"] / "data" / "customers.csv"
    output = ctx.workspace / "scores" / "churn-latest.parquet"
    started = time.perf_counter()
    job = run_batch(settings, "devon", "churn", str(export), str(output), BatchOptions())
    seconds = time.perf_counter() - started
    out.print(f"devon batch-scored the raw CRM export {export.relative_to(ctx.workspace)} with the champion "
              f"(v{job.model_version}): {job.row_count:,} rows in {seconds:.1f} s into "
              f"{output.relative_to(ctx.workspace)}; job {job.id[:12]} records input fingerprint "
              f"{job.input_fingerprint[:12]}…, model version and output")
    logged = PredictionLog(settings, "churn").read()
    logged = logged.filter(pc.equal(logged["source"], "batch"))
    out.print(f"the model version's pipeline treated each record as the ingest did (name dropped, e-mail not a "
              f"feature, birth date to its year, postcode to its region): the prediction log holds "
              f"{logged.num_rows:,} batch predictions with birth years such as {logged['birth_date'][0]} and "
              f"postcode regions such as {logged['postcode'][0]!s}, never the raw values")
    riskiest = pq.read_table(output).sort_by([("probability", "descending")]).slice(0, 3).to_pylist()
    out.print("highest churn risk: " + ", ".join(f"customer {r['customer_id']} ({r['probability']:.0%})"
                                                 for r in riskiest))
    raw = pacsv.read_csv(export, convert_options=pacsv.ConvertOptions(
        column_types={"birth_date": pa.string(), "postcode": pa.string()}))
    return raw.drop_columns(["churned"]).to_pylist()


def _stream(ctx: DemoContext, url: str, records: list[dict[str, Any]]) -> None:
    import redis

    from valueloop.deploy.stream import StreamOptions, consume, send_events, stream_names

    out = ctx.console
    client = redis.Redis.from_url(url)
    inp, output, dead = stream_names("churn")
    group = f"valueloop-demo-{uuid.uuid4().hex[:8]}"  # never touches another group's entries
    client.xgroup_create(inp, group, id="$", mkstream=True)
    before = client.xrevrange(output, count=1)
    start_id = before[0][0] if before else b"0-0"
    stop = threading.Event()
    options = StreamOptions(redis_url=url, group=group, consumer="demo", batch_size=1000, block_ms=50)
    summary: dict[str, Any] = {}
    consumer = threading.Thread(target=lambda: summary.update(s=consume(ctx.settings, "oscar", "churn", options, stop)))
    consumer.start()
    ids = set(send_events(client, "churn", [records[i % len(records)] for i in range(BURST)]))
    malformed = client.xadd(inp, {"data": json.dumps({"tenure_months": "long"})}).decode()
    seen: set[str] = set()
    deadline = time.monotonic() + 300
    letter = None
    while (len(seen) < BURST or letter is None) and time.monotonic() < deadline and consumer.is_alive():
        time.sleep(0.2)
        seen |= {f[b"event_id"].decode() for _, f in client.xrange(output, min=start_id)} & ids
        letter = next((f for _, f in client.xrange(dead) if f[b"event_id"].decode() == malformed), None)
    stop.set()
    consumer.join()
    entries = [(i, f) for i, f in client.xrange(output, min=start_id) if f[b"event_id"].decode() in ids]
    span = (int(entries[-1][0].decode().split("-")[0]) - int(entries[0][0].decode().split("-")[0])) / 1000
    out.print(f"oscar's consumer scored {len(seen):,} of {BURST:,} raw CRM records from {inp} into {output}: "
              f"{len(entries) / max(span, 1e-3):,.0f} events/s from first to last output, each logged "
              f"and acknowledged (XACK) after its output was written")
    if letter is not None:
        out.print(f"a malformed event went to {dead}: {letter[b'reason'].decode()}")
    client.xgroup_destroy(inp, group)


def run(ctx: DemoContext) -> None:
    ctx.chapter("Deploy in bulk and in real time: batch scoring, then a Redis Stream")
    records = _batch(ctx)
    with _redis(ctx) as url:
        _stream(ctx, url, records)

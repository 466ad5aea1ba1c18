"""Real-time scoring from a Redis Stream, losing nothing.

Events are stream entries with one field ``data``: a JSON object of the model's features. A
consumer reads them in a consumer group (``XREADGROUP``), scores them in micro-batches, writes
the predictions to the prediction log and then, in one atomic server-side script (all or
nothing, like ``MULTI``), adds an output entry per event (with its ``event_id``) and acknowledges
the inputs (``XACK``). A consumer killed in between
leaves its events pending: another consumer claims them (``XAUTOCLAIM``) once they have been idle
for ``claim_idle_ms``, so each event is scored at least once and written to the output once per
successful batch (readers deduplicate by ``event_id``). An event is held to the contract a REST
request is (the model's features, or the raw record its pipeline treats): one REST would refuse,
or one delivered ``max_deliveries`` times without being scored, goes to the dead-letter stream
with the reason (REST's message), and the stream keeps flowing. The consumer follows its alias:
a promotion or a rollback is loaded, verified and warmed beside it, then swapped in between batches.

Streams: ``valueloop:<usecase>:in`` (input), ``:out`` (predictions), ``:dead`` (dead letters);
group ``valueloop``; consumer ``<host>-<pid>`` unless named. Permission: :attr:`Action.deploy`.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from pydantic_core import to_json

from valueloop.config import Settings, hide_password
from valueloop.errors import ValueloopError
from valueloop.outcomes import audit
from valueloop.outcomes.users import get_user
from valueloop.store import session

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import redis

    from valueloop.deploy.model import ServedModel
    from valueloop.deploy.stream_health import StreamMetrics


def stream_names(usecase: str) -> tuple[str, str, str]:
    """The input, output and dead-letter streams of a use case."""
    return f"valueloop:{usecase}:in", f"valueloop:{usecase}:out", f"valueloop:{usecase}:dead"


class StreamOptions(BaseModel):
    model: str = "champion"
    redis_url: str | None = Field(None, description="default: the redis_url setting")
    group: str = "valueloop"
    consumer: str | None = Field(None, description="default: <host>-<pid>")
    batch_size: int = Field(1000, ge=1, description="most events read and scored at once")
    block_ms: int = Field(200, ge=1, description="longest wait for new events before looking around")
    claim_idle_ms: int = Field(10_000, ge=1, description="pending this long, an event is claimed")
    max_deliveries: int = Field(5, ge=1, description="deliveries before an event is dead-lettered")
    connect_timeout: float = Field(30.0, gt=0, description="seconds to keep retrying an unreachable Redis")
    metrics_port: int | None = None
    idle_exit: float | None = Field(None, gt=0, description="stop after this many seconds without events")
    log_predictions: bool = True
    poll_seconds: float = Field(1.0, gt=0, description="how often the registry is asked whether the model's "
                                "alias moved (a promotion, a rollback): the consumer follows it between batches")
    threads: int = Field(1, ge=1, description="threads the model may use (OpenMP, BLAS): consumers scale out "
                         "by process, and several processes that each use every core slow each other down")


class StreamSummary(BaseModel):
    usecase: str
    consumer: str
    model_version: str
    predicted: int
    dead_lettered: int
    failed: int
    batches: int
    seconds: float


class RedisUnreachable(ValueloopError):
    exit_code = 8
    http_status = 503


def connect(url: str, timeout: float) -> redis.Redis:
    """A client that answered PING, retrying with backoff for ``timeout`` seconds."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=30,
                                  health_check_interval=0)
    wait_until_reachable(client, url, timeout)
    return client


def wait_until_reachable(client: redis.Redis, url: str, timeout: float) -> None:
    import redis

    deadline, pause = time.monotonic() + timeout, 0.1
    while True:
        try:
            client.ping()
            return
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if time.monotonic() + pause > deadline:
                raise RedisUnreachable(
                    f"Redis at {hide_password(url)} is unreachable after {timeout:g} s ({exc}); start redis-server "
                    "or point VALUELOOP_REDIS_URL (or --redis-url) at a running one") from None
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def send_events(client: redis.Redis, usecase: str, records: Iterable[dict[str, Any]],
                chunk: int = 1000) -> list[str]:
    """XADD records to the use case's input stream, as producers do; returns the entry ids."""
    stream = stream_names(usecase)[0]
    ids: list[str] = []
    pipe = client.pipeline(transaction=False)
    for i, record in enumerate(records, 1):
        pipe.xadd(stream, {"data": json.dumps(record)})
        if i % chunk == 0:
            ids += [x.decode() for x in pipe.execute()]
    ids += [x.decode() for x in pipe.execute()]
    return ids


def _entries(client: redis.Redis, stream: str, page: int = 1000) -> Iterable[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of ``stream``, oldest first, a page at a time."""
    start = "-"
    while entries := client.xrange(stream, min=start, count=page):
        yield from entries
        start = "(" + entries[-1][0].decode()


def delete_events(client: redis.Redis, usecase: str, matches: Callable[[dict[str, Any]], bool],
                  matches_text: Callable[[bytes], bool] = lambda data: False) -> int:
    """Delete the events whose record ``matches`` from the use case's input stream and dead
    letters, and the predictions made for them from its output: a data subject's erasure in
    Redis. A document that is no JSON object (a producer's broken one, kept among the dead
    letters) is judged by its bytes, ``matches_text``. A server that keeps an append-only file
    rewrites it, or the deleted entries would stay in it. Returns how many entries were deleted."""

    def held(fields: dict[bytes, bytes]) -> bool:
        data = fields.get(b"data", b"")
        try:
            document = json.loads(data)
        except ValueError:
            return matches_text(data)
        return matches(document) if isinstance(document, dict) else matches_text(data)

    inputs, outputs, dead = stream_names(usecase)
    events = {i for i, fields in _entries(client, inputs) if held(fields)}
    letters = {i: fields.get(b"event_id") for i, fields in _entries(client, dead) if held(fields)}
    named = events | {e for e in letters.values() if e}
    answers = {i for i, fields in _entries(client, outputs) if fields.get(b"event_id") in named}
    deleted = sum(client.xdel(stream, *ids) for stream, ids in ((inputs, events), (dead, letters), (outputs, answers))
                  if ids)
    if deleted and client.info("persistence").get("aof_enabled"):
        client.bgrewriteaof()
        deadline = time.monotonic() + 60
        while (state := client.info("persistence"))["aof_rewrite_in_progress"] or state["aof_rewrite_scheduled"]:
            if time.monotonic() > deadline:
                raise ValueloopError("Redis did not finish rewriting its append-only file within 60 s: the deleted "
                                     "events may still be in it; run BGREWRITEAOF on it")
            time.sleep(0.05)
    return deleted


#: Output entries, dead letters and the XACK of their inputs in one atomic step (a script runs
#: whole, like MULTI), in one round trip: packing thousands of XADDs client-side costs more CPU
#: than scoring them. KEYS: input, output, dead; ARGV: group, consumer, model version, payload
#: (JSON: ``ids``, ``predictions`` and ``probabilities`` as JSON texts, ``dead``, ``ack``).
_COMMIT = """
local batch = cjson.decode(ARGV[4])
local ids, predictions, probabilities = batch.ids, batch.predictions, batch.probabilities
for i = 1, #ids do
  if probabilities[i] == nil then
    redis.call('XADD', KEYS[2], '*', 'event_id', ids[i], 'prediction', predictions[i], 'model_version', ARGV[3],
               'consumer', ARGV[2])
  else
    redis.call('XADD', KEYS[2], '*', 'event_id', ids[i], 'prediction', predictions[i],
               'probability', probabilities[i], 'model_version', ARGV[3], 'consumer', ARGV[2])
  end
end
for _, d in ipairs(batch.dead) do
  redis.call('XADD', KEYS[3], '*', 'event_id', d[1], 'reason', d[2], 'data', d[3], 'consumer', ARGV[2])
end
for i = 1, #batch.ack, 500 do
  redis.call('XACK', KEYS[1], ARGV[1], unpack(batch.ack, i, math.min(i + 499, #batch.ack)))
end
return #batch.ack
"""


@dataclass
class _Batch:
    """The entries in hand: the events that match the signature (ids and features), and the
    dead letters."""

    ids: list[str] = field(default_factory=list)
    features: pa.Table | None = None
    dead: list[tuple[str, str, bytes]] = field(default_factory=list)  # (id, reason, raw data)


@dataclass
class _Scored:
    """The events the model answered, in order, with their features for the prediction log."""

    ids: list[str]
    features: pa.Table
    predictions: np.ndarray
    probabilities: np.ndarray | None


def _json_texts(values: np.ndarray) -> list[str]:
    """Each value as JSON text; integer labels, the common case, without a call per value."""
    if values.dtype.kind in "iu":
        return list(map(str, values.tolist()))
    return [json.dumps(v) for v in values.tolist()]


def _concat(parts: list[_Scored]) -> _Scored | None:
    if not parts:
        return None
    import numpy as np
    import pyarrow as pa

    probabilities = [p.probabilities for p in parts]
    return _Scored([i for p in parts for i in p.ids], pa.concat_tables([p.features for p in parts]),
                   np.concatenate([p.predictions for p in parts]),
                   None if probabilities[0] is None else np.concatenate(probabilities))


class Consumer:
    def __init__(self, settings: Settings, usecase: str, model: ServedModel, client: redis.Redis,
                 options: StreamOptions, name: str, metrics: StreamMetrics) -> None:
        from valueloop.deploy.predlog import PredictionLog
        from valueloop.deploy.stream_follow import Follower

        self.usecase, self.client, self.options, self.name = usecase, client, options, name
        self.follower = Follower(settings, model, options.model, options.poll_seconds)
        self.model = model
        self.input, self.output, self.dead = stream_names(usecase)
        self.log = PredictionLog(settings, usecase) if options.log_predictions else None
        self.metrics = metrics
        self.last_error: dict[str, str] = {}
        self.claim_cursor = "0-0"
        self.next_claim = 0.0
        self.next_lag = 0.0
        self.predicted = self.dead_lettered = self.failed = self.batches = 0
        self._commit = client.register_script(_COMMIT)

    def ensure_group(self) -> None:
        import redis

        try:
            self.client.xgroup_create(self.input, self.options.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self) -> int:
        """Claim abandoned entries now and then, else read new ones; returns the entries handled."""
        self.model = self.follower.current()
        now = time.monotonic()
        handled = 0
        if now >= self.next_claim:
            self.next_claim = now + min(self.options.claim_idle_ms / 2000, 5.0)
            handled += self._claim()
        read = self.client.xreadgroup(self.options.group, self.name, {self.input: ">"},
                                      count=self.options.batch_size, block=self.options.block_ms)
        entries = read[0][1] if read else []
        if entries:
            handled += self._handle(entries, {})
        if now >= self.next_lag:
            self.next_lag = now + 1.0
            self._refresh_lag()
        self.metrics.tick()
        return handled

    def _claim(self) -> int:
        cursor, entries, _deleted = self.client.xautoclaim(
            self.input, self.options.group, self.name, self.options.claim_idle_ms,
            start_id=self.claim_cursor, count=self.options.batch_size)
        self.claim_cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
        entries = [(i, f) for i, f in entries if f is not None]
        if not entries:
            return 0
        first, last = entries[0][0], entries[-1][0]
        pending = self.client.xpending_range(self.input, self.options.group, min=first, max=last,
                                             count=len(entries), consumername=self.name)
        deliveries = {p["message_id"].decode(): p["times_delivered"] for p in pending}
        return self._handle(entries, deliveries)

    def _handle(self, entries: list[tuple[bytes, dict[bytes, bytes]]], deliveries: dict[str, int]) -> int:
        started = time.perf_counter()
        batch = _Batch()
        fresh: list[tuple[str, bytes]] = []
        for raw_id, fields in entries:
            event_id = raw_id.decode()
            raw = fields.get(b"data", b"")
            delivered = deliveries.get(event_id, 1)
            if delivered > self.options.max_deliveries:
                error = self.last_error.pop(event_id, "the consumers that had it stopped before scoring it")
                batch.dead.append((event_id, f"delivered {delivered} times without being scored; "
                                             f"last error: {error}", raw))
            else:
                fresh.append((event_id, raw))
        features = self._parsed([raw for _, raw in fresh])
        if features is not None:
            batch.ids, batch.features = [event_id for event_id, _ in fresh], features
        else:
            self._examine(fresh, batch)
        scored = self._score(batch)
        self._write(batch, scored)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return len(entries)

    def _parsed(self, documents: list[bytes]) -> pa.Table | None:
        """The batch's features in one pass, when every event parses and keeps every rule."""
        parsed = self.model.validator.read_json(documents)
        if parsed is None and self.model.raw is not None:  # raw records, as the source exports them
            parsed = self.model.raw.validator.read_json(documents)
        if parsed is None:
            return None
        try:
            return self.model.features(parsed)
        except ValueloopError:
            return None

    def _examine(self, fresh: list[tuple[str, bytes]], batch: _Batch) -> None:
        """One event at a time, when the batch as a whole did not pass: each event is checked as
        REST checks a request, and one REST would refuse becomes a dead letter with its message.
        The raw records among them go through the pipeline together, then are checked one by one."""
        model, validator = self.model, self.model.validator
        rows: dict[str, list[Any]] = {name: [] for name in validator.names}
        raw_ids: list[str] = []
        raw_rows: dict[str, list[Any]] = {name: [] for name in model.raw.validator.names} if model.raw else {}
        documents = dict(fresh)
        for event_id, raw in fresh:
            try:
                record = json.loads(raw)
            except ValueError as exc:
                batch.dead.append((event_id, f"field 'data' is not JSON: {exc}", raw))
                continue
            if not isinstance(record, dict):
                batch.dead.append((event_id, f"field 'data' is a JSON {type(record).__name__}, not an object "
                                             "of features", raw))
                continue
            is_raw = model.raw is not None and model.raw.is_raw(set(record))
            try:
                checked = (model.raw.validator if is_raw else validator).records([record])  # type: ignore[union-attr]
            except ValueloopError as exc:
                batch.dead.append((event_id, self._refused(exc), raw))
                continue
            ids, into = (raw_ids, raw_rows) if is_raw else (batch.ids, rows)
            ids.append(event_id)
            for name, values in checked.items():
                into[name] += values
        if raw_ids:
            self._treat(raw_ids, raw_rows, documents, batch, rows)
        if batch.ids:
            batch.features = validator.table_of(rows)

    def _treat(self, ids: list[str], raw_rows: dict[str, list[Any]], documents: dict[str, bytes], batch: _Batch,
               rows: dict[str, list[Any]]) -> None:
        """Raw records through the pipeline in one pass; each treated row is then held to the
        model's rules alone, as a request of that one record would be."""
        from valueloop.data.serving import ROW

        raw = self.model.raw
        assert raw is not None
        try:
            treated = raw.treated(raw.validator.table_of(raw_rows))
        except ValueloopError as exc:  # a refusal of the model version itself: every record has it
            batch.dead += [(event_id, self._refused(exc), documents[event_id]) for event_id in ids]
            return
        by_row = dict(zip(treated[ROW].to_pylist(), treated.drop_columns([ROW]).to_pylist(), strict=True))
        for i, event_id in enumerate(ids):
            try:
                if i not in by_row:
                    raise raw.dropped([0])
                checked = self.model.validator.records([{n: by_row[i][n] for n in self.model.validator.names
                                                         if n in by_row[i]}])
            except ValueloopError as exc:
                batch.dead.append((event_id, self._refused(exc), documents[event_id]))
                continue
            batch.ids.append(event_id)
            for name, values in checked.items():
                rows[name] += values

    def _refused(self, exc: ValueloopError) -> str:
        return (f"refused by model v{self.model.version} as REST refuses it: {exc.message}: "
                f"{'; '.join(exc.problems)}")

    def _score(self, batch: _Batch) -> _Scored | None:
        """The events that could be scored; an event the model fails on stays pending, to be
        claimed and tried again."""
        if batch.features is None:
            return None
        try:
            return self._predict(batch.ids, batch.features)
        except Exception:  # noqa: BLE001 - find the events that fail, score the others
            scored = []
            for i, event_id in enumerate(batch.ids):
                try:
                    scored.append(self._predict([event_id], batch.features.slice(i, 1)))
                except Exception as exc:  # noqa: BLE001 - the event is retried, then dead-lettered
                    self.last_error[event_id] = f"{exc.__class__.__name__}: {exc}"
                    self.metrics.error("model")
                    self.failed += 1
            return _concat(scored)

    def _predict(self, ids: list[str], features: pa.Table) -> _Scored:
        result = self.model.predict_table(features)
        self.metrics.batch_size.observe(len(ids))
        return _Scored(ids, features, result.labels, result.probabilities)

    def _write(self, batch: _Batch, scored: _Scored | None) -> None:
        """Log, then output and acknowledge in one atomic script: an acknowledged event has its output."""
        if self.log is not None and scored is not None:
            self.log.append(self._log_records(scored), source="stream")
        ids = scored.ids if scored is not None else []
        done = ids + [d[0] for d in batch.dead]
        if done:
            payload = {
                "ids": ids,
                "predictions": _json_texts(scored.predictions) if scored is not None else [],
                "probabilities": (list(map(repr, scored.probabilities.tolist()))
                                  if scored is not None and scored.probabilities is not None else []),
                "dead": [[i, reason, raw.decode(errors="replace")] for i, reason, raw in batch.dead],
                "ack": done,
            }
            self._commit(keys=[self.input, self.output, self.dead],
                         args=[self.options.group, self.name, self.model.version, to_json(payload)])
        self.predicted += len(ids)
        self.dead_lettered += len(batch.dead)
        self.batches += 1 if ids else 0
        self.metrics.handled("predicted", len(ids))
        self.metrics.handled("dead_lettered", len(batch.dead))
        self.metrics.dead_letters.inc(len(batch.dead))
        self.metrics.last_batch = time.time()

    def _log_records(self, scored: _Scored) -> pa.Table:
        """The prediction log's records: latency runs from the entry's id (Redis's clock, ms)."""
        import numpy as np
        import pyarrow as pa

        added = np.array([int(i.partition("-")[0]) for i in scored.ids], dtype=np.float64) / 1000
        columns = {
            "request_id": pa.array(scored.ids, pa.string()),
            "model_version": pa.repeat(pa.scalar(self.model.version), len(scored.ids)),
            "latency_seconds": np.maximum(0.0, time.time() - added),
            "prediction": scored.predictions,
        }
        if scored.probabilities is not None:
            columns["probability"] = scored.probabilities
        return pa.table({**columns, **{c: scored.features[c] for c in scored.features.column_names}})

    def _refresh_lag(self) -> None:
        for group in self.client.xinfo_groups(self.input):
            if group["name"].decode() == self.options.group:
                self.metrics.lag.set(group.get("lag") or 0)
                self.metrics.pending.set(group.get("pending") or 0)

    def summary(self, seconds: float) -> StreamSummary:
        return StreamSummary(usecase=self.usecase, consumer=self.name, model_version=self.model.version,
                             predicted=self.predicted, dead_lettered=self.dead_lettered, failed=self.failed,
                             batches=self.batches, seconds=round(seconds, 3))


def server_of(settings: Settings, url: str) -> str:
    """Which Redis a consumer reads, as its start is audited: ``home`` for the home's private
    server (on another port each time it starts), else its URL with the password hidden. An
    erasure searches each (operate/erasure.py)."""
    home = settings.home / "redis" / "url"
    return "home" if home.is_file() and home.read_text().strip() == url else hide_password(url)


def _start(settings: Settings, actor: str | None, name: str, options: StreamOptions, consumer: str,
           url: str) -> ServedModel:
    from valueloop.deploy.model import load_ref
    from valueloop.deploy.scoring import authorize

    with session(settings) as s:
        acting = authorize(s, actor, name)
        model = load_ref(s, settings, acting.name, name, options.model)
        audit.record(s, acting.name, "stream.start", "stream_consumer", consumer, usecase=name,
                     after={"model_version": model.version, "model": options.model, "group": options.group,
                            "streams": list(stream_names(name)), "redis": server_of(settings, url)})
        return model


def consume(settings: Settings, actor: str | None, usecase: str, options: StreamOptions | None = None,
            stop: threading.Event | None = None) -> StreamSummary:
    """Score the use case's input stream until ``stop`` is set (the batch in hand is finished
    first), or no event came for ``idle_exit`` seconds; Redis lost for longer than
    ``connect_timeout`` raises :class:`RedisUnreachable`."""
    import redis
    from threadpoolctl import threadpool_limits

    from valueloop.deploy import stream_health

    options = options or StreamOptions()
    stop = stop or threading.Event()
    name = options.consumer or f"{socket.gethostname()}-{os.getpid()}"
    url = options.redis_url or settings.redis_url
    model = _start(settings, actor, usecase, options, name, url)
    client = connect(url, options.connect_timeout)
    metrics = stream_health.StreamMetrics(usecase, name)
    server = stream_health.serve(metrics, options.metrics_port) if options.metrics_port is not None else None
    worker = Consumer(settings, usecase, model, client, options, name, metrics)
    started = last_event = time.monotonic()
    limits = threadpool_limits(options.threads)
    try:
        worker.ensure_group()
        while not stop.is_set():
            try:
                if worker.step():
                    last_event = time.monotonic()
                elif options.idle_exit and time.monotonic() - last_event > options.idle_exit:
                    break
                metrics.healthy = True
            except (redis.ConnectionError, redis.TimeoutError):
                metrics.healthy = False
                metrics.error("redis")
                wait_until_reachable(client, url, options.connect_timeout)
    finally:
        worker.follower.close()
        limits.restore_original_limits()
        if server is not None:
            server.shutdown()
        client.close()
    summary = worker.summary(time.monotonic() - started)
    with session(settings) as s:
        audit.record(s, get_user(s, actor).name, "stream.stop", "stream_consumer", name, usecase=usecase,
                     after=summary.model_dump())
    return summary

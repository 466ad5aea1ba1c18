"""Adaptive micro-batching: queued requests are predicted together and answered separately."""

from __future__ import annotations

import asyncio

import numpy as np
from sklearn.linear_model import LogisticRegression

from valueloop.deploy.batching import MicroBatcher
from valueloop.deploy.model import ServedModel
from valueloop.deploy.schema import compile_validator


class Counting(LogisticRegression):
    calls: list[int] = []

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        Counting.calls.append(len(x))
        return super().predict_proba(x)


def _model() -> ServedModel:
    x = np.arange(40, dtype=float).reshape(-1, 1)
    estimator = Counting().fit(x, (x[:, 0] > 20).astype(int))
    return ServedModel("u", "1", estimator, compile_validator([{"name": "x", "type": "double"}]))


def test_queued_requests_share_a_call_and_get_their_own_answers() -> None:
    async def scenario() -> list[list[int]]:
        batcher = MicroBatcher(_model(), max_batch_size=4)
        batcher.start()
        futures = [batcher.submit({"x": [float(v)]}, 1) for v in (0, 39, 1, 38, 2, 37, 3, 36, 4, 35)]
        answers = [(await f).labels for f in futures]
        await batcher.close()
        return answers

    Counting.calls = []
    answers = asyncio.run(scenario())
    assert answers == [[0], [1]] * 5
    assert Counting.calls == [4, 4, 2]  # ten queued requests, at most four rows per call


def test_close_finishes_what_is_queued() -> None:
    async def scenario() -> bool:
        batcher = MicroBatcher(_model(), max_batch_size=64)
        batcher.start()
        pending = [batcher.submit({"x": [1.0, 2.0]}, 2) for _ in range(5)]
        await batcher.close()
        return all(f.done() and len(f.result().labels) == 2 for f in pending)

    assert asyncio.run(scenario())


def test_a_request_that_reaches_a_closed_batcher_is_still_answered() -> None:
    """A request that picked a version before a swap may submit after its batcher closed."""

    async def scenario() -> list[int]:
        batcher = MicroBatcher(_model(), max_batch_size=64)
        batcher.start()
        await batcher.close()
        return (await asyncio.wait_for(batcher.submit({"x": [39.0]}, 1), timeout=5)).labels

    assert asyncio.run(scenario()) == [1]


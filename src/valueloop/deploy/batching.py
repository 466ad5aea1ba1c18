"""Adaptive micro-batching: requests to one model version that arrive while it is busy are
predicted together in one call, then answered separately.

Adaptive means no fixed wait by default: a request arriving at an idle model is predicted at
once (lowest latency at low load); under load, everything queued while the previous call ran
forms the next batch (up to ``max_batch_size`` rows), so throughput grows with concurrency.
``max_wait_ms`` adds an optional wait to fill a batch further.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from valueloop.deploy.metrics import BATCH_SIZE
from valueloop.deploy.model import Prediction, ServedModel

_Item = tuple[dict[str, list[Any]], int, asyncio.Future[Prediction]]


class MicroBatcher:
    """One queue and one consumer task per served model version; model calls run in a thread
    of their own so the event loop keeps parsing requests meanwhile."""

    def __init__(self, model: ServedModel, *, max_batch_size: int = 64, max_wait_ms: float = 0) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self._pending: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._busy = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"predict-{model.usecase}-v{model.version}")
        self._batch_size = BATCH_SIZE.labels(model.usecase, model.version)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, columns: dict[str, list[Any]], rows: int, alone: bool = False) -> asyncio.Future[Prediction]:
        """Queue validated rows; the future resolves with their prediction. A caller that gives
        up (a timeout) cancels the future and its rows are skipped if not yet predicted.

        ``alone``: no other request is in flight, so nothing could join a batch; the rows are
        predicted at once, saving the hops to the batching task and back. So are the rows of a
        request that reaches a batcher already closed by a swap: no task is left to take them.
        """
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        closed = self._task is not None and self._task.done()
        if closed or (alone and not self._pending and not self._busy):
            self._batch_size.observe(rows)
            try:
                future.set_result(self.model.predict(columns))
            except Exception as exc:  # noqa: BLE001 - the caller answers with it
                future.set_exception(exc)
            return future
        self._pending.append((columns, rows, future))
        self._wake.set()
        return future

    async def close(self) -> None:
        """Finish everything queued (requests in flight end on this version), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=False)

    def _take(self, batch: list[_Item], rows: int) -> int:
        while rows < self.max_batch_size and self._pending:
            item = self._pending.popleft()
            batch.append(item)
            rows += item[1]
        return rows

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch: list[_Item] = []
            rows = self._take(batch, 0)
            if self.max_wait and rows < self.max_batch_size and not self._closing:
                await asyncio.sleep(self.max_wait)
                self._take(batch, rows)
            live = [item for item in batch if not item[2].done()]  # skip requests that timed out
            if live:
                self._busy = True
                try:
                    await self._call(loop, live)
                finally:
                    self._busy = False

    async def _call(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        if len(batch) == 1:
            columns, rows = batch[0][0], batch[0][1]
        else:
            names = self.model.validator.names
            columns = {n: [v for item in batch for v in item[0][n]] for n in names}
            rows = sum(item[1] for item in batch)
        self._batch_size.observe(rows)
        try:
            if len(batch) == 1 and not self._pending:
                result = self.model.predict(columns)  # alone: a thread hop would only add latency
            else:
                result = await loop.run_in_executor(self._executor, self.model.predict, columns)
        except Exception as exc:  # noqa: BLE001 - each waiting request gets the error, the loop lives
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for _, n, future in batch:
            if not future.done():
                future.set_result(_slice(result, start, start + n))
            start += n


def _slice(p: Prediction, start: int, stop: int) -> Prediction:
    return Prediction(p.labels[start:stop], None if p.probabilities is None else p.probabilities[start:stop],
                      p.pyfunc[start:stop], None if p.classes is None else p.classes[start:stop])

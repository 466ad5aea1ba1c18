"""The evaluation figures are drawn in one worker process beside training, not on its critical
path. The worker starts, and imports matplotlib, while training reads its data (:func:`start`);
it draws a candidate's figures while the candidate is evaluated and logged, never beside a later
fit: a fit waits until the figures are drawn (:func:`idle`) and has the cores to itself, as in a
plain script (figures drawn beside LightGBM's two OpenMP threads made its fit seconds slower on
two cores). The worker is kept for the process's life (a server or a test session pays its start
once); one that died is replaced at the next submission (its pending jobs raise BrokenProcessPool)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

#: how often the worker looks whether its parent still lives
PARENT_POLL_SECONDS = 0.5
_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
#: the jobs submitted and maybe not done yet (pruned at each submission)
_pending: list[Future[Any]] = []


def _end() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _exit_with(parent: int) -> None:
    """Runs in the worker: end it when its parent is gone (killed, say). An orphan would hold the
    parent's stdout and stderr open, and whoever reads them would wait for it forever. And end it
    at once when its parent shuts the pool down (and waits for it): it holds nothing to finalize,
    its figures are written and closed, and tearing down matplotlib's and scikit-learn's modules
    took a third of a second of the parent's exit."""
    import atexit

    atexit.register(_end)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="valueloop-parent-watch", daemon=True).start()


def _new_pool() -> ProcessPoolExecutor:
    import multiprocessing

    # spawn, not fork: the parent runs LightGBM's and MLflow's threads, which a fork would copy mid-step
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with, initargs=(os.getpid(),))


def submit(function: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``function(*args)`` (importable, with picklable arguments) in the worker."""
    global _pool, _pending
    with _lock:
        if _pool is None:
            _pool = _new_pool()
        try:
            job = _pool.submit(function, *args)
        except BrokenProcessPool:  # the worker died since the last job: start another
            _pool = _new_pool()
            job = _pool.submit(function, *args)
        _pending = [f for f in _pending if not f.done()] + [job]
        return job


def start(prepare: Callable[[], Any]) -> None:
    """Start the worker now if none runs, with ``prepare`` (its imports) as its first job, so
    that they overlap the caller's reading and a single-threaded first fit; :func:`idle` does
    not wait for them, a figure submitted after them does."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = _new_pool()
            _pool.submit(prepare)


def idle() -> None:
    """Wait until the worker has drawn every figure submitted so far (their failures are for
    their owners to read): call it before a fit."""
    with _lock:
        waiting = [f for f in _pending if not f.done()]
    wait(waiting)


def shutdown() -> None:
    """Stop the worker and wait for it: at exit, so that nothing outlives the process."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)


atexit.register(shutdown)  # also when the process leaves without the interpreter's teardown (heap.leave)

"""The garbage collector in a short-lived process that imports much: a training process holds
~3,500 modules' worth of objects (MLflow, scikit-learn, SQLAlchemy), and each full collection
traverses them all (0.1 s of CPU each, seven in a training, and several more at exit), though
the garbage they free is young. And at its end, such a process leaves without tearing down its
modules and objects one by one (seconds of ``valueloop train``'s wall time on a busy machine)."""

from __future__ import annotations

import gc
import sys

#: full collections in a one-shot process: after this many young ones (CPython's default is 10)
ONE_SHOT_FULL_EVERY = 100
_one_shot = False


def one_shot() -> None:
    """For a command that does one job and exits (``valueloop train``): full collections ten times
    rarer. The young collections, which free the short-lived cycles, run as before; and
    :func:`leave` ends the process at once."""
    global _one_shot
    _one_shot = True
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, ONE_SHOT_FULL_EVERY)


def leave(code: int) -> None:
    """Exit with ``code``. A one-shot process flushes its output and runs its exit handlers (its
    drawing worker is shut down, MLflow ends an open run), then ends without the interpreter's
    teardown: its data and thousands of modules are freed by the system at once, not object by
    object, which took longer than a training's evaluation (its rows are committed by then)."""
    if not _one_shot:
        sys.exit(code)
    import atexit
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()  # what a normal exit runs; the handlers are not run twice (os._exit)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

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
    """Exit with ``code``. A one-shot process does what a normal exit does first, in its order:
    it flushes its output, waits for its threads (executors' pools are shut down, the drawing
    worker too) and runs its exit handlers (MLflow ends an open run). Then it ends without the
    interpreter's teardown: its data and thousands of modules are freed by the system at once,
    not object by object, which took longer than a training's evaluation."""
    if not _one_shot:
        sys.exit(code)
    import atexit
    import os
    import threading

    sys.stdout.flush()
    sys.stderr.flush()
    threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own first exit step
    atexit._run_exitfuncs()  # its second; neither runs twice, as os._exit skips the rest
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

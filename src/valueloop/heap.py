"""The garbage collector in a short-lived process that imports much: a training process holds
~3,500 modules' worth of objects (MLflow, scikit-learn, SQLAlchemy), and each full collection
traverses them all (0.1 s of CPU each, seven in a training, and several more at exit), though
the garbage they free is young."""

from __future__ import annotations

import gc

#: full collections in a one-shot process: after this many young ones (CPython's default is 10)
ONE_SHOT_FULL_EVERY = 100


def one_shot() -> None:
    """For a command that does one job and exits (``valueloop train``): full collections ten times
    rarer. The young collections, which free the short-lived cycles, run as before."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, ONE_SHOT_FULL_EVERY)


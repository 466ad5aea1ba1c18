"""A serving process's chores (the prediction log's writer, the registry's poll) at the lowest OS
priority. They share a core with the requests: at the requests' priority, a chore just awake
from its second of sleep ran first, for milliseconds, and a request arriving meanwhile waited
(in the p99 at one connection); below them, a request's wake-up preempts the chore at once."""

from __future__ import annotations

import os
import sys
import threading

#: the nice value of a chore's thread: the lowest priority that still gets a share of a busy
#: core (SCHED_IDLE does not, and a chore holding the interpreter lock would keep it)
NICE = 19


def lower_priority() -> None:
    """The calling thread, not its process, at :data:`NICE`. Linux only: elsewhere the call
    would take the whole process down with it."""
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)

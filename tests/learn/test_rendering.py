"""The drawing process that takes the evaluation figures off training's critical path."""

from __future__ import annotations

import operator
import os
from concurrent.futures.process import BrokenProcessPool

import pytest

from valueloop.learn import rendering


def test_a_drawing_process_that_dies_fails_its_job_and_the_next_job_gets_a_new_one() -> None:
    assert rendering.submit(operator.add, 1, 2).result() == 3
    with pytest.raises(BrokenProcessPool):
        rendering.submit(os._exit, 3).result()  # the worker dies mid-job, as a crash would end it
    assert rendering.submit(operator.add, 2, 3).result() == 5

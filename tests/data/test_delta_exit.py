"""A process that reads a Delta table exits cleanly. Read through deltalake's own filesystem (its
Rust object store behind a Python filesystem), most such processes aborted at exit with
"terminate called without an active exception" (exit 134; delta-rs#2184): a `valueloop train`
that had finished, a batch job over a Delta input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

READS = {
    "a dataset version": "from valueloop.data import delta; assert delta.read(sys.argv[1], 0).num_rows == 3",
    "a batch input": "from valueloop.deploy.batch_io import _delta; from valueloop.storage import Location; "
                     "assert _delta(Location.parse(sys.argv[1], 't'), None, 't').dataset.to_table().num_rows == 3",
}


@pytest.mark.parametrize("what", READS)
def test_a_process_that_reads_a_delta_table_exits_cleanly(what: str, tmp_path: Path) -> None:
    from deltalake import write_deltalake

    write_deltalake(str(tmp_path / "table"), pa.table({"a": [1, 2, 3]}))
    for _ in range(3):  # the abort came at most exits, not all
        done = subprocess.run([sys.executable, "-c", f"import sys; {READS[what]}", str(tmp_path / "table")],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-500:]}"

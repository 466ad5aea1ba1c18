"""Drift is counted from summaries with NumPy and SciPy: computing it loads none of training's or
plotting's libraries, whose imports would be most of its memory (issue 19)."""

from __future__ import annotations

import json
import subprocess
import sys

UNUSED = ["mlflow", "sklearn", "matplotlib", "lightgbm", "pandas", "plotly", "optuna"]

SCRIPT = """
import io, json, sys
from pyarrow import csv
from valueloop.operate.drift import TESTS, dataset_drift
from valueloop.operate.summary import build_reference, summarize

def table(shift, categories):  # read from CSV text: pa.array and pa.table of Python or NumPy data import pandas
    rows = "".join(f"{i % 17 + shift},{categories[i % 4]}\\n" for i in range(2000))
    return csv.read_csv(io.BytesIO(("x,c\\n" + rows).encode()))

table, shifted = table(0, "abca"), table(3, "ccba")
reference = build_reference(lambda columns=None: table.select(columns or table.column_names).to_batches())
current = summarize(shifted.to_batches(), reference)
flagged = {method: dataset_drift(reference, current, default=(method, None)).drifted
           for method in ("chisquare", "jensenshannon", "psi")}
flagged["ks"] = dataset_drift(reference, current, overrides={"c": ("psi", None)}, default=("ks", None)).drifted
flagged["wasserstein"] = dataset_drift(reference, current).drifted
print(json.dumps({"flagged": flagged, "methods": sorted(TESTS),
                  "loaded": sorted(m for m in UNUSED if m in sys.modules)}))
"""


def test_drift_imports_nothing_it_does_not_use():
    done = subprocess.run([sys.executable, "-c", SCRIPT.replace("UNUSED", repr(UNUSED))], capture_output=True,
                          text=True, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["flagged"] == {method: ["c", "x"] for method in report["methods"]}
    assert report["loaded"] == []

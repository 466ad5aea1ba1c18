"""Drift is counted from summaries with NumPy and SciPy: computing it loads none of training's or
plotting's libraries, whose imports would be most of its memory (issue 19). The methods above 1000
reference rows, Wasserstein and Jensen-Shannon, load no more of SciPy than scipy.special: not
scipy.stats (~34 MiB, for KS and chi-square only) nor scipy.spatial (~12 MiB, sparse matrices,
linear algebra and k-d trees along)."""

from __future__ import annotations

import json
import subprocess
import sys

UNUSED = ["mlflow", "sklearn", "matplotlib", "lightgbm", "pandas", "plotly", "optuna"]
#: what the default methods on large data do not use either
UNUSED_LARGE = UNUSED + ["scipy.stats", "scipy.spatial"]

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
large = dataset_drift(reference, current)  # 2000 reference rows: Wasserstein and Jensen-Shannon
loaded_large = sorted(m for m in UNUSED_LARGE if m in sys.modules)
flagged = {method: dataset_drift(reference, current, default=(method, None)).drifted
           for method in ("chisquare", "jensenshannon", "psi")}
flagged["ks"] = dataset_drift(reference, current, overrides={"c": ("psi", None)}, default=("ks", None)).drifted
flagged["wasserstein"] = large.drifted
print(json.dumps({"flagged": flagged, "methods": sorted(TESTS), "large": sorted({c.method for c in large.columns.values()}),
                  "loaded_large": loaded_large, "loaded": sorted(m for m in UNUSED if m in sys.modules)}))
"""


def test_drift_imports_nothing_it_does_not_use():
    script = SCRIPT.replace("UNUSED_LARGE", repr(UNUSED_LARGE)).replace("UNUSED", repr(UNUSED))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["flagged"] == {method: ["c", "x"] for method in report["methods"]}
    assert report["large"] == ["jensenshannon", "wasserstein"]
    assert report["loaded_large"] == []
    assert report["loaded"] == []

"""Tree ensembles compiled to native code at registration, when the use case asks for it
(``model: compile: true``): treelite reads the trees of a LightGBM or scikit-learn ensemble, and
tl2cgen turns them into a shared library with gcc. Only the trees are compiled: a pipeline's
preprocessing and a classifier's decision threshold stay the registered model's own.

The library is an artifact of the model's run (``compiled/model.so``) with its own SHA-256 digest
in the registry; a load verifies it and refuses a changed file, as it refuses a changed model.
A model that cannot be compiled (not a tree ensemble, no gcc, predictions that differ) is
registered as usual with a note saying why, and is served by Python.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ARTIFACT_DIR = "compiled"
LIBRARY = "model.so"
#: how far a compiled prediction may be from the Python model's (float32 sums against float64)
TOLERANCE = 1e-5
#: the scikit-learn ensembles treelite reads (classifier and regressor of each)
_SKLEARN = ("RandomForest", "ExtraTrees", "GradientBoosting", "HistGradientBoosting")
_SUPPORTED = ("LightGBM, or scikit-learn's random forest, extra trees, gradient boosting "
              "and histogram gradient boosting")


class CompiledRecord(BaseModel):
    """What registration did with ``model: compile: true``: the library (its artifact URI, digest
    and compiler) or the note why the model is served by Python."""

    library: str | None = None
    digest: str | None = None
    compiler: str | None = None
    note: str | None = None


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _parts(estimator: Any) -> tuple[Any | None, Any]:
    """(the preprocessing, the trees) of a registered estimator: within a FixedThresholdClassifier,
    a pipeline's steps before its last one, and its last."""
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.pipeline import Pipeline

    inner = estimator
    if isinstance(estimator, FixedThresholdClassifier):  # fitted, or wrapping a fitted model (training)
        inner = getattr(estimator, "estimator_", estimator.estimator)
    if isinstance(inner, Pipeline):
        return (inner[:-1] if len(inner) > 1 else None), inner[-1]
    return None, inner


def _treelite_model(trees: Any) -> Any | None:
    """The trees in treelite's form, or None for a model that is not a supported ensemble."""
    import treelite

    name = type(trees).__name__
    if type(trees).__module__.startswith("lightgbm") and hasattr(trees, "booster_"):
        return treelite.frontend.from_lightgbm(trees.booster_)
    if name.removesuffix("Classifier").removesuffix("Regressor") in _SKLEARN:
        return treelite.sklearn.import_model(trees)
    return None


def compiler() -> str:
    from importlib.metadata import version

    return f"treelite {version('treelite')}, tl2cgen {version('tl2cgen')}"


def compile_model(estimator: Any, example: pd.DataFrame, folder: Path) -> tuple[Path | None, str | None]:
    """The library compiled from the estimator's trees into ``folder`` and checked against the
    estimator on the example rows; else None and the reason, for the registry's note."""
    trees = _parts(estimator)[1]
    name = type(trees).__name__
    # a compiler's failure of any kind leaves the model as it is: registration never fails on it
    try:
        model = _treelite_model(trees)
    except Exception as error:  # noqa: BLE001
        return None, f"treelite cannot read this {name}: {error}"
    if model is None:
        return None, f"{name} is not a tree ensemble valueloop compiles ({_SUPPORTED}); served by Python"
    if shutil.which("gcc") is None:
        return None, "gcc is not installed, so the trees were not compiled; served by Python"
    library, checkpoint = folder / LIBRARY, folder / "model.treelite"
    try:
        model.serialize(checkpoint)
        done = subprocess.run([sys.executable, "-m", __name__, str(checkpoint), str(library)],
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            return None, (f"tl2cgen could not compile this {name} (exit {done.returncode}: "
                          f"{done.stderr.strip()[-500:]}); served by Python")
        differs = _difference(CompiledEstimator(estimator, library.read_bytes()), estimator, example)
    except Exception as error:  # noqa: BLE001
        return None, f"tl2cgen could not compile this {name}: {error}; served by Python"
    if differs > TOLERANCE:
        return None, (f"the compiled {name} differs from the model by {differs:.3g} on the input example "
                      f"(tolerance {TOLERANCE:g}); served by Python")
    return library, None


def _difference(compiled: CompiledEstimator, estimator: Any, example: pd.DataFrame) -> float:
    import numpy as np

    method = "predict_proba" if hasattr(estimator, "predict_proba") else "predict"
    return float(np.max(np.abs(getattr(compiled, method)(example) - getattr(estimator, method)(example))))


def _export(checkpoint: str, library: str) -> None:
    """tl2cgen's compilation, run in a child process: a crash of the compiler cannot take the
    registering process down, and its C++ log (a notice that tl2cgen's own treelite is older than
    the one that read the model) stays out of the user's terminal."""
    import tl2cgen
    import treelite

    tl2cgen.export_lib(treelite.Model.deserialize(checkpoint), toolchain="gcc", libpath=library,
                       params={"parallel_comp": len(os.sched_getaffinity(0))})


def with_library(estimator: Any, library: bytes, label: str) -> Any:
    """The estimator answering from its verified compiled library, or the estimator itself, with
    a warning in the log, when the library cannot load on this machine (another architecture or
    C library): a model that serves slower beats one that does not serve."""
    import tl2cgen

    try:
        return CompiledEstimator(estimator, library)
    except (tl2cgen.TL2cgenError, OSError) as error:
        logging.getLogger(__name__).warning("model %s: compiled library not loaded (%s); served by Python",
                                            label, error)
        return estimator


class CompiledEstimator:
    """The registered estimator whose trees answer from the compiled library: ``predict_proba``
    (and a regressor's ``predict``) run the preprocessing in Python, then the library; every other
    attribute (``classes_``, ``threshold``, ``pos_label``...) is the estimator's. Picklable, with
    the library's bytes, so that a Dask client can ship it to its workers."""

    def __init__(self, estimator: Any, library: bytes) -> None:
        self.estimator, self._library = estimator, library
        self._load()

    def _load(self) -> None:
        """Load the verified bytes from a folder of this load's own (``mkdtemp``: mode 0700, an
        unpredictable name), removed once loaded: a loaded library stays mapped. In a shared,
        predictable folder, another local user could swap the file between its check and its load."""
        import tl2cgen

        folder = Path(tempfile.mkdtemp(prefix="valueloop-compiled-"))
        try:
            path = folder / LIBRARY
            path.write_bytes(self._library)
            self._preprocess = _parts(self.estimator)[0]
            self._predictor = tl2cgen.Predictor(str(path))  # as many threads as OpenMP may use here
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def __getattr__(self, name: str) -> Any:
        estimator = self.__dict__.get("estimator")
        if estimator is None:
            raise AttributeError(name)
        return getattr(estimator, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "library": self._library}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.estimator, self._library = state["estimator"], state["library"]
        self._load()

    def _trees(self, x: Any) -> np.ndarray:
        import numpy as np
        import tl2cgen

        if self._preprocess is not None:
            x = self._preprocess.transform(x)
        if hasattr(x, "toarray"):  # a one-hot encoder's sparse output
            x = x.toarray()
        out = self._predictor.predict(tl2cgen.DMatrix(np.asarray(x, dtype=np.float64)))
        return out.reshape(len(out), -1)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Every class's probability; a binary model's library gives the positive class's only."""
        import numpy as np

        out = self._trees(x)
        return np.column_stack([1.0 - out[:, 0], out[:, 0]]) if out.shape[1] == 1 else out

    def predict(self, x: Any) -> np.ndarray:
        """A regressor's value from the library; a classifier's label is decided by serving from
        ``predict_proba`` (``deploy.model.classify``), so here the estimator decides it."""
        if hasattr(self.estimator, "predict_proba"):
            return self.estimator.predict(x)
        return self._trees(x)[:, 0]


if __name__ == "__main__":
    _export(*sys.argv[1:3])

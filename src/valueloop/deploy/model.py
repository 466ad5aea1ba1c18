"""A model version ready to answer: loaded through the Learn phase's digest-verified loader,
its validator compiled, warmed, and called on the fastest input the model accepts.

The hot path skips pandas when every input is numeric and the estimator was fitted without
column names (a plain float matrix is what it wants); otherwise it builds one DataFrame per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from valueloop.config import Settings
from valueloop.deploy.schema import Validator, compile_validator
from valueloop.errors import InvalidInput


@dataclass
class Prediction:
    """One batch's answers: the label (or value) per row, the probability of the predicted class
    (of the positive class for a binary classifier), and what MLflow's pyfunc would return."""

    labels: list[Any]
    probabilities: list[float] | None
    pyfunc: list[Any]


@dataclass
class ServedModel:
    usecase: str
    version: str
    estimator: Any
    validator: Validator
    predict_fn: str = "predict"
    load_seconds: float = 0.0
    #: output name -> Open Inference Protocol datatype
    outputs: dict[str, str] = field(default_factory=dict, init=False)
    _matrix: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._matrix = self.validator.numeric and not hasattr(self.estimator, "feature_names_in_") \
            and hasattr(self.estimator, "predict")
        self._classes = getattr(self.estimator, "classes_", None) if hasattr(self.estimator, "predict_proba") else None
        self.outputs = _outputs(self._classes)

    def _input(self, columns: dict[str, list[Any]]) -> Any:
        if self._matrix:
            import numpy as np

            return np.array([columns[n] for n in self.validator.names], dtype=np.float64).T
        import pandas as pd

        return pd.DataFrame(columns, columns=self.validator.names)

    def predict(self, columns: dict[str, list[Any]]) -> Prediction:
        """Predict validated columns in one call; runs in a worker thread."""
        x = self._input(columns)
        if self._classes is not None:
            proba = self.estimator.predict_proba(x)
            best = proba.argmax(axis=1)
            labels = self._classes[best].tolist()
            probs = (proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)).tolist()
            pyfunc = proba.tolist() if self.predict_fn == "predict_proba" else labels
            return Prediction(labels, probs, pyfunc)
        if hasattr(self.estimator, "predict") and not hasattr(self.estimator, "metadata"):
            values = self.estimator.predict(x)
        else:  # an MLflow pyfunc model of another flavor
            import pandas as pd

            values = self.estimator.predict(pd.DataFrame(columns, columns=self.validator.names))
        values = values.tolist() if hasattr(values, "tolist") else list(values)
        return Prediction(values, None, values)

    def example(self) -> dict[str, list[Any]]:
        """One plausible row, to warm the model before it takes traffic."""
        fill = {"double": 0.0, "float": 0.0, "long": 0, "integer": 0, "boolean": False,
                "datetime": "2024-01-01"}
        row = {}
        for c in self.validator.columns:
            row[c.name] = [sorted(c.categories)[0] if c.categories else fill.get(c.type, "")]
        return row


def _outputs(classes: Any) -> dict[str, str]:
    """The outputs a prediction carries, with their Open Inference Protocol datatypes: a value
    (regression, or a flavor that does not say) or a class and its probability."""
    if classes is None:
        return {"predict": "FP64"}
    kind = {"b": "BOOL", "i": "INT64", "u": "INT64", "f": "FP64"}.get(classes.dtype.kind, "BYTES")
    return {"predict": kind, "probability": "FP64"}


def from_pyfunc(usecase: str, version: str, pyfunc: Any, load_seconds: float = 0.0) -> ServedModel:
    """Serve an MLflow pyfunc model: its raw scikit-learn estimator when it has one (no per-call
    schema enforcement), else the pyfunc itself. Warmed with one prediction."""
    signature = pyfunc.metadata.signature
    if signature is None:
        raise InvalidInput(f"model {usecase} v{version} has no signature; register it with one "
                           "(mlflow.models.infer_signature) so requests can be validated")
    flavor = pyfunc.metadata.flavors.get("python_function", {})
    try:
        estimator = pyfunc.get_raw_model() if "sklearn" in pyfunc.metadata.flavors else pyfunc
    except (AttributeError, NotImplementedError, ValueError):
        estimator = pyfunc
    validator = compile_validator(signature.inputs.to_dict(), estimator)
    served = ServedModel(usecase=usecase, version=version, estimator=estimator, validator=validator,
                         predict_fn=flavor.get("predict_fn", "predict"), load_seconds=load_seconds)
    served.predict(served.example())
    return served


def load(settings: Settings, usecase: str, version: str) -> ServedModel:
    """Load a registered version through the Learn phase (which verifies the artifact digest)."""
    from valueloop.learn.registry import load_model
    from valueloop.store import session

    started = time.perf_counter()
    with session(settings) as s:
        pyfunc = load_model(s, settings, usecase, int(version))
    return from_pyfunc(usecase, version, pyfunc, time.perf_counter() - started)

"""A model version ready to answer: loaded through the Learn phase's digest-verified loader,
its validator compiled, warmed, and called on the fastest input the model accepts.

The hot path skips pandas when every input is numeric and the estimator was fitted without
column names (a plain float matrix is what it wants); otherwise it builds one DataFrame per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from valueloop.config import Settings
from valueloop.deploy.raw import METADATA_KEY, Contract, RawPipeline
from valueloop.deploy.schema import Validator, compile_validator
from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from sqlalchemy.orm import Session


@dataclass
class Prediction:
    """One batch's answers: the label (or value) per row, the probability of the predicted class
    (of the positive class for a binary classifier), and what MLflow's pyfunc would return."""

    labels: list[Any]
    probabilities: list[float] | None
    pyfunc: list[Any]
    #: a multiclass answer: every class's probability per row, by class
    classes: list[dict[str, float]] | None = None


def classify(estimator: Any, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A classifier's labels and the probability each answer reports. A binary model gives its
    positive class's probability and decides at its threshold (a FixedThresholdClassifier, as the
    Learn phase registers, carries both; else the second class at 0.5); a model of more classes
    gives the most probable class and its probability."""
    import numpy as np

    classes = np.asarray(estimator.classes_)
    if proba.shape[1] == 2:
        positive = list(classes).index(getattr(estimator, "pos_label", None)) \
            if getattr(estimator, "pos_label", None) is not None else 1
        threshold = getattr(estimator, "threshold", "auto")
        probability = proba[:, positive]
        chosen = probability >= (0.5 if threshold == "auto" else threshold)
        return np.where(chosen, classes[positive], classes[1 - positive]), probability
    best = proba.argmax(axis=1)
    return classes[best], proba[np.arange(len(best)), best]


@dataclass
class Scored:
    """The same answers as arrays, for batch, stream and the retraining comparison; ``proba``
    holds every class's probability (a classifier's pyfunc answer)."""

    labels: np.ndarray
    probabilities: np.ndarray | None
    proba: np.ndarray | None = None


@dataclass
class ServedModel:
    """A model version with its contract: REST, batch, stream and retraining all validate with
    its :attr:`validator` and predict through :meth:`scored`, so a record gets the same answer,
    or the same refusal, whichever way it arrives. Picklable: a Dask client ships it to workers."""

    usecase: str
    version: str
    estimator: Any
    validator: Validator
    predict_fn: str = "predict"
    load_seconds: float = 0.0
    #: output name -> Open Inference Protocol datatype
    outputs: dict[str, str] = field(default_factory=dict, init=False)
    #: the pipeline recorded with the version, which turns a raw record into these features
    raw: RawPipeline | None = None
    _matrix: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.contract = Contract(self.validator, self.raw)
        self._matrix = self.validator.numeric and not hasattr(self.estimator, "feature_names_in_") \
            and hasattr(self.estimator, "predict")
        self._classes = getattr(self.estimator, "classes_", None) if hasattr(self.estimator, "predict_proba") else None
        self.outputs = _outputs(self._classes)

    @property
    def classifier(self) -> bool:
        return self._classes is not None

    def _input(self, columns: dict[str, list[Any]]) -> Any:
        if self._matrix:
            import numpy as np

            return np.array([columns[n] for n in self.validator.names], dtype=np.float64).T
        import pandas as pd

        return pd.DataFrame(columns, columns=self.validator.names)

    def table_input(self, table: pa.Table) -> Any:
        """What the estimator is called with for a checked table: a float matrix or a DataFrame."""
        if self._matrix:
            import numpy as np

            return np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
                                    for n in self.validator.names])
        return table.select(self.validator.names).to_pandas(use_threads=False)

    def scored(self, x: Any) -> Scored:
        """The one predict → label/probability path: a classifier is called once through
        ``predict_proba`` and :func:`classify` decides its label (as ``predict`` would, at half the cost)."""
        import numpy as np

        if self._classes is not None:
            proba = self.estimator.predict_proba(x)
            labels, probabilities = classify(self.estimator, proba)
            return Scored(labels, probabilities, proba)
        if hasattr(self.estimator, "predict") and not hasattr(self.estimator, "metadata"):
            return Scored(np.asarray(self.estimator.predict(x)), None)
        import pandas as pd  # an MLflow pyfunc model of another flavor wants named columns

        frame = x if isinstance(x, pd.DataFrame) else pd.DataFrame(x, columns=self.validator.names)
        return Scored(np.asarray(self.estimator.predict(frame)), None)

    def predict(self, columns: dict[str, list[Any]]) -> Prediction:
        """Predict validated columns (a request) in one call; runs in a worker thread."""
        result = self.scored(self._input(columns))
        labels = result.labels.tolist()
        probs = None if result.probabilities is None else result.probabilities.tolist()
        pyfunc = result.proba.tolist() if self.predict_fn == "predict_proba" and result.proba is not None else labels
        every = None
        if result.proba is not None and result.proba.shape[1] > 2:
            names = [str(c) for c in self._classes.tolist()]
            every = [dict(zip(names, row)) for row in result.proba.tolist()]
        return Prediction(labels, probs, pyfunc, every)

    def features(self, data: pa.Table | pa.RecordBatch, first_row: int = 0) -> pa.Table:
        """The checked features of a table of rows (batch, stream): a raw table goes through the
        pipeline first; rows numbered from ``first_row``."""
        if self.raw is not None and self.raw.is_raw(set(data.schema.names)):
            import pyarrow as pa

            return self.raw.features(data if isinstance(data, pa.Table) else pa.Table.from_batches([data]), first_row)
        return self.validator.table(data, first_row)

    def predict_table(self, table: pa.Table) -> Scored:
        """Predict a table that :meth:`Validator.table` checked (batch, stream, retraining)."""
        return self.scored(self.table_input(table))

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


def from_pyfunc(settings: Settings | None, usecase: str, version: str, pyfunc: Any,
                load_seconds: float = 0.0, library: bytes | None = None) -> ServedModel:
    """Serve an MLflow pyfunc model: its raw scikit-learn estimator when it has one (no per-call
    schema enforcement), else the pyfunc itself; its trees from the compiled ``library`` when
    given. Warmed with one prediction. With the settings of the home (whose key treats raw
    records), the version's recorded pipeline takes raw records; without (a bundle, which never
    holds the key), only features."""
    signature = pyfunc.metadata.signature
    if signature is None:
        raise InvalidInput(f"model {usecase} v{version} has no signature; register it with one "
                           "(mlflow.models.infer_signature) so requests can be validated")
    flavor = pyfunc.metadata.flavors.get("python_function", {})
    try:
        estimator = pyfunc.get_raw_model() if "sklearn" in pyfunc.metadata.flavors else pyfunc
    except (AttributeError, NotImplementedError, ValueError):
        estimator = pyfunc
    if library is not None and estimator is not pyfunc:
        from valueloop.learn.compiled import with_library

        estimator = with_library(estimator, library, f"{usecase} v{version}")
    validator = compile_validator(signature.inputs.to_dict(), estimator)
    recorded = (pyfunc.metadata.metadata or {}).get(METADATA_KEY)
    raw = RawPipeline(recorded, validator, settings.pseudonym_key, settings.home / "serving") \
        if recorded and settings is not None else None
    served = ServedModel(usecase=usecase, version=version, estimator=estimator, validator=validator,
                         predict_fn=flavor.get("predict_fn", "predict"), load_seconds=load_seconds, raw=raw)
    served.predict(served.example())
    return served


def _registered(session: Session, settings: Settings, usecase: str, version: int) -> ServedModel:
    """The one place a registered version becomes a ServedModel (REST, batch, stream, retraining):
    the Python model through the Learn phase's digest-verified loader, its trees from their
    compiled library when it has one (also digest-verified: a changed library is refused)."""
    from valueloop.learn.registry import compiled_library, load_model

    started = time.perf_counter()
    pyfunc = load_model(session, settings, usecase, version)
    library = compiled_library(session, settings, usecase, version)
    return from_pyfunc(settings, usecase, str(version), pyfunc, time.perf_counter() - started, library)


def load_ref(session: Session, settings: Settings, actor: str | None, usecase: str, ref: str) -> ServedModel:
    """The model ``ref`` (an alias such as champion, or a version number) of a use case, as the
    actor may view it (batch, stream, retraining)."""
    from valueloop.learn.registry import get_model

    return _registered(session, settings, usecase, get_model(session, actor, usecase, ref).version)


def load(settings: Settings, usecase: str, version: str) -> ServedModel:
    """Load a registered version (REST serving)."""
    from valueloop.store import session

    with session(settings) as s:
        return _registered(s, settings, usecase, int(version))

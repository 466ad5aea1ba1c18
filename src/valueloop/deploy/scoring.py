"""The registered model as a function over Arrow data: what batch and stream scoring share.

A :class:`Scorer` holds the raw estimator (verified by the Learn phase's loader) and the feature
columns of the model's signature. It is picklable, so a Dask client ships it to its workers once.
Classifiers are called once through ``predict_proba``; the predicted class is its argmax, which
is what ``predict`` computes, at half the cost of calling both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from sqlalchemy.orm import Session

    from valueloop.config import Settings
    from valueloop.store.models import User

#: MLflow signature types by the kind of value they accept.
_KINDS = {
    "double": "number", "float": "number", "long": "number", "integer": "number",
    "string": "string", "boolean": "boolean", "datetime": "datetime", "binary": "binary",
}


#: Arrow types of the MLflow signature types a batch is cast to, as MLflow's pyfunc would.
_ARROW = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32",
          "string": "string", "boolean": "bool"}

#: Python values a JSON record may hold per kind, and the Arrow type they are read as.
_PYTHON: dict[str, type | tuple[type, ...]] = {"number": (int, float), "string": str, "boolean": bool,
                                              "datetime": str, "binary": str}
_RECORD_TYPES = {"number": "float64", "string": "string", "boolean": "bool"}
#: an integer type's values lie in [-bound, bound): a fraction or more would fail at scoring
_INTEGER_BOUNDS = {"long": 2**63, "integer": 2**31}


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # number | string | boolean | datetime | binary
    type: str  # the signature's type: double, long, string, ...


def arrow_kind(dtype: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_dictionary(dtype):
        return arrow_kind(dtype.value_type)
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "datetime"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return "binary"
    return str(dtype)


@dataclass
class Scorer:
    usecase: str
    version: str
    estimator: Any
    features: tuple[Feature, ...]
    #: the estimator was fitted on named columns and wants a DataFrame; else a float matrix
    wants_frame: bool

    @property
    def classifier(self) -> bool:
        return hasattr(self.estimator, "predict_proba")

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def column_types(self) -> dict[str, str]:
        """The Arrow type of each feature that has a fixed one: how an input without types (CSV)
        is read, so that a postcode of digits stays the string the model was trained on."""
        return {f.name: _ARROW[f.type] for f in self.features if f.type in _ARROW}

    def check(self, schema: pa.Schema, origin: str) -> None:
        """Refuse input whose columns do not match the model's signature, naming each column."""
        problems = []
        for feature in self.features:
            if feature.name not in schema.names:
                problems.append(f"column '{feature.name}': missing; the model needs a {feature.kind}")
                continue
            kind = arrow_kind(schema.field(feature.name).type)
            if kind != feature.kind:
                problems.append(f"column '{feature.name}': {schema.field(feature.name).type} "
                                f"is not a {feature.kind} as the model's signature requires")
        if problems:
            raise InvalidInput(f"{origin} does not match the signature of model "
                               f"{self.usecase} v{self.version}:", problems=problems)

    def problem(self, row: dict[str, Any]) -> str | None:
        """Why one JSON record cannot be scored (a missing feature, a value of the wrong kind)."""
        for feature in self.features:
            if feature.name not in row:
                return f"missing feature '{feature.name}' (a {feature.kind})"
            value = row[feature.name]
            if value is not None and not isinstance(value, _PYTHON[feature.kind]) or (
                    feature.kind == "number" and isinstance(value, bool)):
                return f"feature '{feature.name}': {value!r} is not a {feature.kind}"
            if (bound := _INTEGER_BOUNDS.get(feature.type)) and isinstance(value, int | float) and not (
                    float(value).is_integer() and -bound <= value < bound):
                return f"feature '{feature.name}': {value!r} is not an integer of the signature's type {feature.type}"
        return None

    def table_of(self, rows: list[dict[str, Any]]) -> pa.Table:
        """Records that passed :meth:`problem` as a table of the signature's columns."""
        import pyarrow as pa

        return pa.table({f.name: pa.array([r[f.name] for r in rows], _RECORD_TYPES.get(f.kind))
                         for f in self.features})

    def read_json(self, documents: list[bytes]) -> pa.Table | None:
        """JSON objects of features as a table, parsed in one pass of Arrow's C++ reader.

        None unless every document is one object (it starts with ``{`` and ends with ``}``, so
        no two documents can merge into one row) whose features are all present, not null and
        of the right kind: the caller then looks at each document with :meth:`problem`.
        """
        import io

        import pyarrow as pa
        import pyarrow.json as pj

        types = [_RECORD_TYPES.get(f.kind) for f in self.features]
        if not documents or None in types or not all(d[:1] == b"{" and d[-1:] == b"}" for d in documents):
            return None
        schema = pa.schema(list(zip(self.columns, types, strict=True)))
        try:
            table = pj.read_json(io.BytesIO(b"\n".join(documents)), read_options=pj.ReadOptions(use_threads=False),
                                 parse_options=pj.ParseOptions(explicit_schema=schema,
                                                               unexpected_field_behavior="ignore"))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        if table.num_rows != len(documents) or any(column.null_count for column in table.columns):
            return None
        return table.select(self.columns)

    def _inputs(self, data: pa.Table | pa.RecordBatch) -> Any:
        import numpy as np
        import pyarrow as pa

        data = data.select(self.columns)
        if self.wants_frame:
            typed = pa.schema([pa.field(f.name, _ARROW.get(f.type) or data.schema.field(f.name).type)
                               for f in self.features])
            return data.cast(typed).to_pandas()
        return np.column_stack([data.column(c).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
                                for c in self.columns])

    def predict(self, data: pa.Table | pa.RecordBatch) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions and, for classifiers, the probability of the positive (or predicted) class."""
        import numpy as np

        inputs = self._inputs(data)
        if not self.classifier:
            return np.asarray(self.estimator.predict(inputs)), None
        proba = self.estimator.predict_proba(inputs)
        best = proba.argmax(axis=1)
        prediction = np.asarray(self.estimator.classes_)[best]
        probability = proba[:, 1] if proba.shape[1] == 2 else proba[np.arange(len(best)), best]
        return prediction, probability


def scorer_of(model: Any, usecase: str, version: str) -> Scorer:
    """A scorer from a loaded MLflow pyfunc model: its raw estimator and its input signature."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise InvalidInput(f"model {usecase} v{version} has no named input signature; "
                           "register it with a signature (the Learn phase does)")
    features = tuple(Feature(c.name, _KINDS.get(c.type.name, c.type.name), c.type.name)
                     for c in schema.inputs)
    estimator = model.get_raw_model()
    return Scorer(usecase=usecase, version=version, estimator=estimator, features=features,
                  wants_frame=hasattr(estimator, "feature_names_in_")
                  or any(f.kind != "number" for f in features))


def authorize(session: Session, actor: str | None, usecase: str) -> User:
    """The acting user, allowed to score the use case's data: :attr:`Action.deploy` (developers
    and operations), on a use case that is not retired."""
    from valueloop.errors import Conflict
    from valueloop.outcomes.lifecycle import State
    from valueloop.outcomes.roles import Action, require
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.outcomes.users import get_user

    found = get_usecase(session, usecase)
    acting = get_user(session, actor)
    require(session, acting, Action.deploy, found)
    if State(found.state) is State.retired:
        raise Conflict(f"use case '{usecase}' is retired: its models no longer score")
    return acting


def load_scorer(session: Session, settings: Settings, actor: str | None, usecase: str, ref: str) -> Scorer:
    """The model ``ref`` (an alias such as champion, or a version number) of a use case, through
    the Learn phase's loader, which verifies the artifact digest before it loads anything."""
    from valueloop.learn.registry import get_model, load_model

    version = get_model(session, actor, usecase, ref).version
    return scorer_of(load_model(session, settings, usecase, version), usecase, str(version))

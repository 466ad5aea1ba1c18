"""From a pinned dataset version to model inputs: the target, the feature columns, the split.

Every check here runs before anything is trained or tracked, so bad input costs nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from valueloop.errors import InvalidInput
from valueloop.outcomes.spec import ColumnTreatment, ModelObjective, Split, Treatment

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa


#: more classes than this is a number to predict, not a class (or a column of identifiers)
MAX_CLASSES = 100


@dataclass(frozen=True)
class Target:
    """What a model predicts: a number (regression), or one of ``classes`` (multiclass: the most
    probable; binary: ``positive`` when its probability reaches ``threshold``)."""

    task: str  # regression | binary | multiclass
    classes: tuple[Any, ...] = ()
    positive: Any = None
    threshold: float = 0.5

    @property
    def classifier(self) -> bool:
        return self.task != "regression"

    @property
    def family(self) -> str:
        """The use case file's task: classification or regression."""
        return "classification" if self.classifier else "regression"

    def record(self) -> dict[str, Any]:
        """What the training run stores of its target, for serving and monitoring to read."""
        return {"task": self.task, "classes": list(self.classes), "positive": self.positive,
                "threshold": self.threshold}

    @classmethod
    def of(cls, record: dict[str, Any] | None, task: str) -> Target:
        """The stored record (None for a run trained before targets were recorded: binary 0/1)."""
        if record is None:
            return cls("regression") if task == "regression" else cls("binary", (0, 1), 1)
        return cls(record["task"], tuple(record["classes"]), record["positive"], record["threshold"])


@dataclass(frozen=True)
class Prepared:
    """The dataset as the models see it; ``frame`` keeps every column for segments and tests."""

    frame: pd.DataFrame
    y: pd.Series
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    target: Target

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - the scikit-learn name
        return self.frame[self.features]


@dataclass(frozen=True)
class Cut:
    train: np.ndarray
    test: np.ndarray
    record: dict[str, Any]


def _where(version: int) -> str:
    return f"dataset version {version}"


def identifiers(frame_columns: list[str], objective: ModelObjective,
                treatments: dict[str, ColumnTreatment]) -> set[str]:
    """Columns that name a row rather than describe it: never a model input."""
    pseudonymized = [c for c, t in treatments.items() if t.treatment is Treatment.pseudonymize]
    return {c for c in frame_columns if objective.identifier(c, pseudonymized)}


def _unknown(field: str, names: list[str], columns: list[str], version: int) -> None:
    missing = [n for n in names if n not in columns]
    if missing:
        raise InvalidInput(
            f"{field}: column(s) {', '.join(missing)} not in {_where(version)}; "
            f"columns: {', '.join(columns)}"
        )


def prepare(table: pa.Table, objective: ModelObjective, treatments: dict[str, ColumnTreatment],
            version: int) -> Prepared:
    """Check the target against the task and choose the features, or say exactly what is wrong."""
    import pandas as pd

    columns = list(table.column_names)
    if objective.target not in columns:
        raise InvalidInput(
            f"model.target: column '{objective.target}' is not in {_where(version)}; "
            f"columns: {', '.join(columns)}"
        )
    tests = objective.tests
    _unknown("model.features.include", objective.features.include, columns, version)
    _unknown("model.features.exclude", objective.features.exclude, columns, version)
    _unknown("model.segments", objective.segments, columns, version)
    _unknown("model.tests.invariance", [t.column for t in tests.invariance], columns, version)
    _unknown("model.tests.directional", [t.column for t in tests.directional], columns, version)
    _unknown("model.tests.segment_floors", [t.column for t in tests.segment_floors], columns, version)
    if objective.split.time_column:
        _unknown("model.split.time_column", [objective.split.time_column], columns, version)

    frame = table.to_pandas()
    labelled = frame[objective.target].notna()
    if not labelled.all():
        frame = frame[labelled].reset_index(drop=True)
    y = frame[objective.target]
    target = _check_target(y, objective, version)

    dropped = identifiers(columns, objective, treatments) | set(objective.features.exclude)
    dropped |= {objective.target, objective.split.time_column}
    chosen = objective.features.include or columns
    features = [c for c in chosen if c not in dropped
                and not pd.api.types.is_datetime64_any_dtype(frame[c])]
    if not features:
        raise InvalidInput(f"model.features: no feature column is left in {_where(version)} after "
                           f"removing the target, identifiers and exclusions ({', '.join(sorted(dropped - {None}))})")
    for kind, checks in (("invariance", tests.invariance), ("directional", tests.directional)):
        if unread := [c.column for c in checks if c.column not in features]:
            raise InvalidInput(f"model.tests.{kind}: {', '.join(unread)} not a model input of {_where(version)} "
                               f"(features: {', '.join(features)}); a test of a column the model never "
                               "reads cannot fail")
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])]
    if tests.directional and target.task == "multiclass":
        raise InvalidInput(f"model.tests.directional: target '{objective.target}' has {len(target.classes)} "
                           "classes; a directional test needs one number to move (regression or binary)")
    for check in tests.directional:
        if check.column not in numeric:
            raise InvalidInput(f"model.tests.directional: column '{check.column}' is not numeric; "
                               "a directional test adds a number to it")
    return Prepared(frame=frame, y=y, features=features, numeric=numeric,
                    categorical=[c for c in features if c not in numeric], target=target)


def _check_target(y: pd.Series, objective: ModelObjective, version: int) -> Target:
    import pandas as pd

    if y.empty:
        raise InvalidInput(f"model.target: '{objective.target}' has no labelled row in {_where(version)}")
    distinct = y.nunique()
    if objective.task == "classification":
        if not 2 <= distinct <= MAX_CLASSES:
            raise InvalidInput(
                f"model.task: classification does not match target '{objective.target}': it has "
                f"{distinct} distinct value(s) in {_where(version)}; classification needs 2 to "
                f"{MAX_CLASSES} (regression predicts a number)"
            )
        classes = tuple(sorted(y.unique().tolist()))
        if distinct > 2:
            if objective.positive_class is not None or objective.decision_threshold is not None:
                raise InvalidInput(f"model.positive_class, model.decision_threshold: target '{objective.target}' "
                                   f"has {distinct} classes in {_where(version)}; they need exactly 2")
            return Target("multiclass", classes)
        positive = classes[1]
        if objective.positive_class is not None:
            named = [c for c in classes if str(c) == str(objective.positive_class)]
            if not named:
                raise InvalidInput(f"model.positive_class: {objective.positive_class!r} is not a class of "
                                   f"target '{objective.target}' in {_where(version)}; its classes: "
                                   f"{', '.join(map(repr, classes))}")
            positive = named[0]
        fixed = objective.decision_threshold
        return Target("binary", classes, positive, fixed if isinstance(fixed, float) else 0.5)
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        raise InvalidInput(f"model.task: regression does not match target '{objective.target}': "
                           f"its type is {y.dtype}, regression needs numbers")
    if distinct <= 2:
        raise InvalidInput(f"model.task: regression does not match target '{objective.target}': it "
                           f"has only {distinct} distinct value(s); use task classification")
    return Target("regression")


def split(prepared: Prepared, spec: Split, task: str) -> Cut:
    """The deterministic train/test cut; the record names it (including a digest of the test rows).

    It reads the target's classes as integer codes in sorted order, as scikit-learn numbers them
    too (``np.unique``): the same cut as on the values, without sorting a million strings."""
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import train_test_split

    n = len(prepared.frame)
    n_test = int(np.ceil(n * spec.test_size))
    if n_test < 1 or n - n_test < 1:
        raise InvalidInput(f"model.split: test_size {spec.test_size} of {n} row(s) leaves an empty "
                           f"{'test' if n_test < 1 else 'training'} set; more rows are needed")
    codes = pd.factorize(prepared.y, sort=True)[0] if spec.kind == "stratified" or task == "classification" else None
    if spec.kind == "time":
        order = np.argsort(prepared.frame[spec.time_column].to_numpy(), kind="stable")
        train, test = np.sort(order[: n - n_test]), np.sort(order[n - n_test:])
    else:
        stratify = codes if spec.kind == "stratified" else None
        try:
            train, test = train_test_split(np.arange(n), test_size=n_test, random_state=spec.seed,
                                           stratify=stratify)
        except ValueError as exc:
            raise InvalidInput(f"model.split: cannot cut {n} row(s) {spec.kind}ly: {exc}") from None
        train, test = np.sort(train), np.sort(test)
    if codes is not None and task == "classification":
        for part, rows in (("training", train), ("test", test)):
            if (codes[rows] == codes[rows[0]]).all():
                raise InvalidInput(f"model.split: the {part} set ({len(rows)} rows) holds only one "
                                   "class of the target; use more rows or kind stratified")
    record = spec.model_dump(mode="json") | {
        "train_rows": int(len(train)), "test_rows": int(len(test)),
        "test_digest": hashlib.sha256(test.astype("int64").tobytes()).hexdigest(),
    }
    return Cut(train=train, test=test, record=record)

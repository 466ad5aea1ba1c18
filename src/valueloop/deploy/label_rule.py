"""The rule a label follows: the use case's target. A regression label is a finite number; a
classification label is one of the classes the model in service was trained on, of their type
(1.0 is the class 1, but "yes", [1], 2, 0.5 and true are not classes of a 0/1 target).

Labels are checked against this rule when they arrive (``/feedback``, ``valueloop labels
correct``) and again when they are read, so a label stored before the rule existed cannot break
the monitor: it is reported and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import pyarrow as pa

#: how many classes a message lists before it says "..."
_SHOWN = 10


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


@dataclass(frozen=True)
class LabelRule:
    target: str
    task: str
    #: the classes of the model in service (classification)
    classes: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.task == "regression":
            return f"a finite number (target '{self.target}' is a regression target)"
        shown = ", ".join(repr(c) for c in self.classes[:_SHOWN]) + (", ..." if len(self.classes) > _SHOWN else "")
        return f"one of {shown} (the classes of target '{self.target}')"

    def check(self, label: Any) -> tuple[Any, str | None]:
        """The label as stored (the class itself, a float for regression), or the problem."""
        if label is None:
            return None, "required, got null"
        kind = _kind(label)
        if self.task == "regression":
            if kind == "number" and math.isfinite(label):
                return float(label), None
        else:
            for c in self.classes:
                if _kind(c) == kind and c == label:
                    return c, None
        return None, f"expected {self.describe()}, got {label!r:.60}"

    def arrow_type(self) -> pa.DataType:
        """The stored column's type: float64 for regression, the classes' own type otherwise."""
        import pyarrow as pa

        if self.task == "regression":
            return pa.float64()
        return {"boolean": pa.bool_(), "string": pa.string()}.get(
            _kind(self.classes[0]), pa.float64() if any(isinstance(c, float) for c in self.classes) else pa.int64())


def rule_for(session: Session, usecase: str) -> LabelRule:
    """The rule of a use case's labels: its target and task, and the classes the model in service
    was trained on, as its training run recorded them (0 and 1 for a run from before they were,
    and before any model, as the monitor assumes)."""
    from sqlalchemy import select

    from valueloop.learn.dataset import Target
    from valueloop.learn.registry import in_service
    from valueloop.learn.tables import TrainingRun
    from valueloop.outcomes.usecases import get_usecase, spec_of

    model = spec_of(get_usecase(session, usecase)).model
    if model.task == "regression":
        return LabelRule(model.target, model.task)
    serving = in_service(session, usecase)
    recorded = session.scalar(select(TrainingRun.target).where(TrainingRun.run_id == serving.run_id)) \
        if serving else None
    return LabelRule(model.target, model.task, Target.of(recorded, model.task).classes)

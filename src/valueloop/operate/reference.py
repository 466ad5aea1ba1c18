"""The drift reference of a use case: the training dataset version of the model in service
(the champion, else the newest registered version, else the newest dataset version), summarized
from the profile the Data phase computed once at ingest."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.learn.dataset import Target
from valueloop.operate.summary import OTHER, ColumnSummary
from valueloop.operate.windows import Reference
from valueloop.outcomes.spec import UseCaseSpec
from valueloop.store.models import UseCase


def _model_in_service(session: Session, usecase: str,
                      task: str) -> tuple[int | None, list[str] | None, Target]:
    """(dataset version, features, target) of the champion, else of the newest registered version."""
    from valueloop.learn.registry import in_service
    from valueloop.learn.tables import TrainingRun

    row = in_service(session, usecase)
    if row is None:
        return None, None, Target.of(None, task)
    run = session.scalar(select(TrainingRun).where(TrainingRun.run_id == row.run_id))
    return row.dataset_version, run.features if run else None, Target.of(run.target if run else None, task)


def from_profile(column: dict[str, Any], rows: int) -> ColumnSummary | None:
    """One column of the Data phase's profile as a summary to count windows against; None for a
    column it keeps no distribution of (dates, empty columns)."""
    nulls = int(column.get("nulls") or 0)
    histogram = column.get("histogram")
    if histogram and histogram.get("counts") is not None:
        edges = np.asarray(histogram["edges"], float)
        counts = np.concatenate([[0], np.asarray(histogram["counts"], np.int64), [0]])
        present = rows - nulls
        mean, std = float(column.get("mean") or 0.0), float(column.get("std") or 0.0)
        return ColumnSummary("numeric", rows=rows, nulls=nulls, edges=edges, counts=counts,
                             low=float(edges[0]), high=float(edges[-1]),
                             total=mean * present, total_sq=(std * std + mean * mean) * present)
    if column.get("kind") == "categorical" and "top_values" in column:
        values = {str(t["value"]): int(t["count"]) for t in column["top_values"]}
        other = int(column.get("other_count") or 0)
        if other:
            values[OTHER] = other
        return ColumnSummary("categorical", rows=rows, nulls=nulls, values=values, complete=not other)
    return None


def reference_for(session: Session, usecase: UseCase, spec: UseCaseSpec) -> Reference:
    from valueloop.data import get_version
    from valueloop.errors import NotFound

    version_number, features, predicts = _model_in_service(session, usecase.name, spec.model.task)
    problems = []
    try:
        version = get_version(session, usecase.name, version_number)
    except NotFound:
        return Reference(version=None, rows=0, columns={}, predicts=predicts,
                         problems=[f"'{usecase.name}' has no dataset version yet: no drift reference"])
    profile = version.profile
    rows = int(profile.get("rows", version.row_count))
    columns = profile.get("columns", {})
    target = spec.model.target
    if features is None:  # no model yet: what the Learn phase would take as inputs
        from valueloop.learn.dataset import identifiers

        proposed = {c.column: c for c in spec.privacy.columns}
        dropped = identifiers(list(columns), spec.model, proposed) | set(spec.model.features.exclude) | {target}
        features = [c for c in (spec.model.features.include or columns) if c not in dropped]
    wanted = features
    missing = [c for c in wanted if c not in columns]
    if missing:
        problems.append(f"feature(s) not in the profile of dataset version {version.version}: {', '.join(missing)}")
    summaries = {c: summary for c in wanted if c in columns
                 and (summary := from_profile(columns[c], rows)) is not None}
    reference_target = None
    if target in columns:
        reference_target = from_profile(columns[target], rows)
        if predicts.classifier and reference_target is not None and reference_target.kind == "numeric":
            if set(predicts.classes) <= {0, 1}:
                reference_target = _binary_target(columns[target], rows)
            else:  # the profile keeps a histogram of a number, not the count of each class
                reference_target = None
                problems.append(f"target '{target}' holds {len(predicts.classes)} numeric classes: the "
                                "profile has no count per class, so the prediction's drift is not measured")
    return Reference(version=version.version, rows=rows, columns=summaries, target=reference_target,
                     predicts=predicts, problems=problems)


def _binary_target(column: dict[str, Any], rows: int) -> ColumnSummary:
    """A 0/1 target profiled as a number: its mean is the share of ones."""
    nulls = int(column.get("nulls") or 0)
    ones = round(float(column.get("mean") or 0.0) * (rows - nulls))
    return ColumnSummary("categorical", rows=rows, nulls=nulls, values={"1": ones, "0": rows - nulls - ones})

"""The pipeline a model version is served with, recorded in its MLflow metadata at training.

From the dataset version it was trained on: the sources' raw schemas, the DPIA's treatments as
applied (with the key's id) and the row-level transform; with the model's features. Serving
(deploy/raw.py) applies it to every raw record. A transform that is not row-level cannot run per
request: then each feature must be a source column (treated as the DPIA says) or be declared in
``model.features.upstream``, computed by the systems that call the model; training refuses,
naming the features, rather than serve a different feature space in silence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from valueloop.errors import InvalidInput

if TYPE_CHECKING:
    from valueloop.data.service import DatasetVersionView


def _treated(treatments: dict[str, Any]) -> str:
    shown = []
    for column, t in sorted(treatments.items()):
        params = ", ".join(f"{k} {v}" for k, v in (t.get("params") or {}).items())
        shown.append(f"{column} {t['treatment']}{f' ({params})' if params else ''}")
    return "; ".join(shown) or "none"


def pipeline(version: DatasetVersionView, features: list[str], upstream: list[str]) -> tuple[dict[str, Any] | None, str]:
    """The record serving applies to raw records (None when the version predates it), and what
    the training report says of it, plainly."""
    if unknown := sorted(set(upstream) - set(features)):
        raise InvalidInput(f"model.features.upstream: {', '.join(unknown)} are not features of the model "
                           f"(features: {', '.join(features)})")
    serving = version.serving
    if serving is None:
        return None, (f"serving: dataset version {version.version} predates recorded pipelines, so clients send "
                      "the treated features; ingest again to let them send raw records")
    record = serving | {"treatments": version.treatments, "features": features, "upstream": [],
                        "dataset_columns": [c.name for c in version.columns]}
    treated = _treated(version.treatments)
    if serving["query"] is not None:
        return record, (f"serving: a raw record of source {serving['source']} is treated as the DPIA says "
                        f"({treated}) and transformed per record, exactly as at ingest; clients may send it, or "
                        "the features")
    raw = {c for s in serving["sources"].values() for c in s["columns"]}
    computed = [f for f in features if f not in upstream and f not in raw]
    if computed:
        raise InvalidInput(
            f"model.features.upstream: the transform is not row-level ({serving['not_row_level']}), so serving "
            f"cannot compute feature(s) {', '.join(computed)} from a raw record; declare them in "
            "model.features.upstream (the systems that call the model compute them as the transform does), or "
            "leave them out with model.features.exclude")
    return record | {"upstream": upstream}, (
        f"serving: the transform is not row-level ({serving['not_row_level']}); features "
        f"{', '.join(upstream) or 'none'} are computed upstream and sent as they are, beside the raw record, "
        f"whose columns are treated as the DPIA says ({treated})")

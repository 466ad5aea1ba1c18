"""HTTP routes of the Data phase that read: dataset versions, one version's record, its first rows.
Ingest and check read the project's files, so they run on the server's machine only."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from valueloop.data.service import DatasetSample, DatasetVersionView, sample, visible_version, visible_versions
from valueloop.server.deps import DB, Actor

router = APIRouter(prefix="/api/usecases", tags=["data"])
#: a version's number, or ``newest``
Version = int | Literal["newest"]


@router.get("/{name}/datasets")
def versions(name: str, s: DB, actor: Actor) -> list[DatasetVersionView]:
    return visible_versions(s, actor, name)


@router.get("/{name}/datasets/{version}")
def version_record(name: str, version: Version, s: DB, actor: Actor) -> DatasetVersionView:
    """A version's schema, lineage, quality and profile (``newest``: the latest version)."""
    return visible_version(s, actor, name, None if version == "newest" else version)


@router.get("/{name}/datasets/{version}/sample")
def version_sample(name: str, version: Version, s: DB, actor: Actor,
                   rows: int = Query(5, ge=0, description="how many first rows")) -> DatasetSample:
    """A version's record and its first rows, read back from Delta."""
    return sample(s, actor, name, None if version == "newest" else version, rows)

"""HTTP routes of the Data phase that read: dataset versions and one version with its first rows.
Ingest and check read the project's files, so they run on the server's machine only."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from valueloop.data.service import DatasetSample, DatasetVersionView, sample, visible_versions
from valueloop.server.deps import DB, Actor

router = APIRouter(prefix="/api/usecases", tags=["data"])


@router.get("/{name}/datasets")
def versions(name: str, s: DB, actor: Actor) -> list[DatasetVersionView]:
    return visible_versions(s, actor, name)


@router.get("/{name}/datasets/{version}")
def show_version(name: str, version: int | Literal["newest"], s: DB, actor: Actor,
                 rows: int = Query(5, ge=0, description="how many first rows")) -> DatasetSample:
    """A version's record (``newest``: the latest) and its first rows, read back from Delta."""
    return sample(s, actor, name, None if version == "newest" else version, rows)

"""HTTP routes of the Data phase: ingest and check, dataset versions, one version's record and its
first rows. Over HTTP, ingest and check read the folder of the use case's last ingest: a caller
never names a folder on the server to read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from valueloop.data import service
from valueloop.data.service import DatasetSample, DatasetVersionView, sample, visible_version, visible_versions
from valueloop.errors import GateClosed
from valueloop.server.deps import DB, Actor, AppSettings

router = APIRouter(prefix="/api/usecases", tags=["data"])
#: a version's number (at most PostgreSQL's integer: a larger one is a 422, not a 500), or ``newest``
Version = Annotated[int, Field(ge=0, le=2**31 - 1)] | Literal["newest"]


class Ingestion(BaseModel):
    mode: Literal["append", "overwrite"] | None = Field(None, description="default: the file's data.mode")


def _known_project(s: Session, actor: str, name: str) -> str:
    """The folder of the last ingest, which an operator chose on the server's machine."""
    found = visible_versions(s, actor, name)
    if not found:
        raise GateClosed(f"project: '{name}' has no dataset version yet, so the server knows no project folder "
                         f"to read; the first ingest runs on the server's machine: `valueloop data ingest {name} "
                         "--project DIR`")
    return found[-1].project_dir


@router.post("/{name}/datasets", status_code=201)
def ingest(name: str, body: Ingestion, s: DB, actor: Actor, settings: AppSettings) -> DatasetVersionView:
    """Extract, treat, transform and check the sources, then commit a new dataset version."""
    return service.ingest(s, settings, actor, name, project_dir=_known_project(s, actor, name),
                          mode=body.mode)


@router.post("/{name}/datasets/check")
def check(name: str, s: DB, actor: Actor, settings: AppSettings) -> dict[str, Any]:
    """The quality report the next ingest would make, without writing a version."""
    return service.check(s, settings, actor, name, project_dir=_known_project(s, actor, name))


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

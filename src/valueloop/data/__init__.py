"""Data: extract and load from real sources, transform in SQL, apply the DPIA's treatments,
check quality, and commit immutable, versioned datasets (Delta Lake) with their lineage."""

from valueloop.data.service import (
    DatasetVersionView,
    check,
    get_version,
    ingest,
    list_versions,
    read_version,
)

__all__ = ["DatasetVersionView", "check", "get_version", "ingest", "list_versions", "read_version"]

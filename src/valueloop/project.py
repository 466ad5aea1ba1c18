"""A use case's project folder: the only place the paths in its use case file may lead.

A use case file can be edited by anyone its roles allow, and over HTTP; a path in it that
led anywhere would read any file the process can (``../../etc/passwd``, another team's data,
valueloop's own database). Every path it names is resolved, symlinks followed, and must stay
inside the folder the ingest was given.
"""

from __future__ import annotations

from pathlib import Path

from valueloop.errors import InvalidInput


def inside(project: Path, path: str | Path, field: str) -> Path:
    """``path`` (relative to ``project``, or absolute) resolved, if it lies inside ``project``."""
    resolved = (project / path).resolve()
    if not resolved.is_relative_to(project.resolve()):
        raise InvalidInput(f"{field}: {str(path)!r} is outside the project folder {project}; the "
                           "paths of a use case file must resolve inside it (symlinks followed)")
    return resolved

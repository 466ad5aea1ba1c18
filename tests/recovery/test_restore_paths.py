"""A restore rewrites each stored location once: a home restored into a folder inside the old one
(as the demo does) must not have its new paths rewritten again by the old home's prefix."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from valueloop.config import Settings
from valueloop.data import list_versions, read_version
from valueloop.store import session

Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_a_home_restored_inside_the_old_one_points_into_itself(settings: Settings, churn: Path, run_cli: Cli,
                                                               new_settings: Callable[[Path], Settings],
                                                               tmp_path: Path) -> None:
    ingested = run_cli(settings, "data", "ingest", "churn", "--project", str(churn), as_user="dave")
    assert ingested.returncode == 0, ingested.stderr
    taken = run_cli(settings, "backup", str(tmp_path / "backup"), as_user="admin")
    assert taken.returncode == 0, taken.stderr

    restored = new_settings(settings.home / "restored")
    done = run_cli(restored, "restore", str(tmp_path / "backup"), as_user="admin")
    assert done.returncode == 0, done.stderr
    inside = str(restored.home.resolve())
    with session(restored) as s:
        uris = [v.uri for v in list_versions(s, "churn")]
        assert uris and all(u.startswith(inside + "/") and "restored/restored" not in u for u in uris), uris
        assert read_version(s, "churn", 0).num_rows == 600

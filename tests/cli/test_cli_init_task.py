"""`valueloop init --task` writes a minimal use case file per task: valid, under 60 lines, and
every field carries a comment saying what it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from valueloop.config import Settings
from valueloop.outcomes.spec import load_spec


@pytest.mark.parametrize("task", ["regression", "multiclass", "binary"])
def test_init_writes_a_minimal_commented_file_for_the_task(
        settings: Settings, run_cli: Callable[..., object], tmp_path: Path, task: str) -> None:
    done = run_cli(settings, "init", "project", "--task", task, cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    written = tmp_path / "project" / "valueloop.yaml"
    assert [p.name for p in written.parent.iterdir()] == ["valueloop.yaml"]
    lines = written.read_text().splitlines()
    assert len(lines) < 60
    fields = [line for line in lines if line.strip() and not line.lstrip().startswith("#")
              and (":" in line.split("#")[0] or line.lstrip().startswith("- "))]
    assert fields and all("#" in line for line in fields), [line for line in fields if "#" not in line]
    spec = load_spec(written)
    classification = task != "regression"
    assert spec.model.task == ("classification" if classification else "regression")
    assert (spec.model.positive_class is not None) == (task == "binary")
    assert spec.threshold_kpi() is not None if task == "binary" else spec.threshold_kpi() is None


def test_an_unknown_task_is_refused(settings: Settings, run_cli: Callable[..., object], tmp_path: Path) -> None:
    done = run_cli(settings, "init", "project", "--task", "ranking", cwd=tmp_path)
    assert done.returncode == 2  # type: ignore[attr-defined]
    assert "--task: 'ranking' is not a task; choose one of binary, multiclass, regression" in done.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "project").exists()

"""``valueloop --help`` and every group's help import nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["sqlalchemy", "pydantic", "fastapi", "pyarrow", "mlflow", "sklearn", "pandas", "alembic",
         "duckdb", "deltalake", "polars", "lightgbm", "optuna", "dask", "numpy", "uvicorn"]

SCRIPT = """
import json, sys
heavy = {heavy}
loaded = lambda: sorted(m for m in heavy if m in sys.modules)
import valueloop.cli
report = {{"import": loaded()}}
from valueloop.cli import app
helps = [["--help"]] + [[g.name, "--help"] for g in app.registered_groups]
helps += [[c.name or c.callback.__name__, "--help"] for c in app.registered_commands]
for args in helps:
    try:
        app(args, standalone_mode=False)
    except SystemExit:
        pass
    report[args[0]] = loaded()
print(json.dumps(report))
"""


def test_help_imports_nothing_heavy():
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(heavy=HEAVY)], capture_output=True,
                            text=True, check=True)
    report = json.loads(result.stdout.splitlines()[-1])
    assert {"usecase", "privacy", "users", "tokens", "init", "config", "audit", "demo"} <= set(report)
    assert report.pop("import") == []
    assert report.pop("--help") == []
    # a group's help: typer (0.29) converts the group's parameters with pydantic, nothing more
    assert {args: loaded for args, loaded in report.items() if set(loaded) - {"pydantic"}} == {}


def test_help_lists_the_commands(settings, run_cli):
    result = run_cli(settings, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("init", "demo", "usecase", "privacy", "users", "tokens", "audit", "config", "server"):
        assert f"  {command} " in result.stdout

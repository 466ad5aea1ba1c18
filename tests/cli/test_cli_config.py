"""``valueloop config`` shows each value and where it came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def config(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``valueloop config`` with only these VALUELOOP_* variables set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")}
    return subprocess.run([sys.executable, "-m", "valueloop", "config", *args], capture_output=True,
                          text=True, env={**clean, "VALUELOOP_HOME": str(home), "COLUMNS": "400", **env})


def test_config_names_the_source_of_each_value(tmp_path, refused):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("mlflow_uri: http://mlflow:5000\n")
    shown = config(home, "--json", VALUELOOP_REDIS_URL="redis://queue:6379/2")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "home": {"value": str(home), "source": "env VALUELOOP_HOME"},
        "database_url": {"value": f"sqlite:///{home}/valueloop.db", "source": "default"},
        "migration_database_url": {"value": "", "source": "default"},
        "mlflow_uri": {"value": "http://mlflow:5000", "source": f"file {home}/config.yaml"},
        "mlflow_ui_url": {"value": "", "source": "default"},
        "artifact_root": {"value": f"{home}/artifacts", "source": "default"},
        "redis_url": {"value": "redis://queue:6379/2", "source": "env VALUELOOP_REDIS_URL"},
        "pseudonym_key": {"value": "valueloop-development-key-change-me", "source": "default"},
        "retired_pseudonym_keys": {"value": "", "source": "default"},
        "allow_development_key": {"value": "false", "source": "default"},
        "url_variables": {"value": "", "source": "default"},
        "hook_modules": {"value": "", "source": "default"},
        "prediction_log": {"value": f"{home}/predictions", "source": "default"},
        "s3_endpoint_url": {"value": "", "source": "default"},
        "s3_region": {"value": "", "source": "default"},
        "s3_access_key_id": {"value": "", "source": "default"},
        "s3_secret_access_key": {"value": "", "source": "default"},
        "backup_dir": {"value": "", "source": "default"},
        "backup_every": {"value": "1d", "source": "default"},
        "backup_keep_daily": {"value": "7", "source": "default"},
        "backup_keep_weekly": {"value": "4", "source": "default"},
    }
    table = config(home, VALUELOOP_PSEUDONYM_KEY="s3cret").stdout
    assert "env VALUELOOP_PSEUDONYM_KEY" in table and "s3cret" not in table
    assert f"file {home}/config.yaml" in table and "http://mlflow:5000" in table

    (home / "config.yaml").write_text("mlflow: http://mlflow:5000\n")
    refused(config(home), 2, f"error: config file {home}/config.yaml: unknown setting(s) mlflow; known: home,")

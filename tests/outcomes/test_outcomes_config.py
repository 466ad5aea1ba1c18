"""Settings are layered defaults < config file < environment, and each knows its source."""

from __future__ import annotations

import pytest

from valueloop.config import key_id, load_settings
from valueloop.errors import InvalidInput


def test_each_value_comes_from_env_file_or_default(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("mlflow_uri: http://mlflow:5000\nredis_url: redis://file:6379/0\n"
                                      "pseudonym_key: from-the-file\n")
    settings = load_settings({"VALUELOOP_HOME": str(home), "VALUELOOP_REDIS_URL": "redis://env:6379/1"})
    shown = {k: (v.value, v.source) for k, v in settings.describe().items()}
    assert shown == {
        "home": (str(home), "env VALUELOOP_HOME"),
        "database_url": (f"sqlite:///{home}/valueloop.db", "default"),
        "migration_database_url": ("", "default"),
        "mlflow_uri": ("http://mlflow:5000", f"file {home}/config.yaml"),
        "mlflow_ui_url": ("", "default"),
        "artifact_root": (f"{home}/artifacts", "default"),
        "redis_url": ("redis://env:6379/1", "env VALUELOOP_REDIS_URL"),
        "pseudonym_key": (f"*** (key id {key_id('from-the-file')})", f"file {home}/config.yaml"),  # never shown
        "retired_pseudonym_keys": ("", "default"),
        "allow_development_key": ("false", "default"),
        "url_variables": ("", "default"),
        "hook_modules": ("", "default"),
        "prediction_log": (f"{home}/predictions", "default"),
        "s3_endpoint_url": ("", "default"),
        "s3_region": ("", "default"),
        "s3_access_key_id": ("", "default"),
        "s3_secret_access_key": ("", "default"),
        "backup_dir": ("", "default"),
        "backup_every": ("1d", "default"),
        "backup_keep_daily": ("7", "default"),
        "backup_keep_weekly": ("4", "default"),
    }
    assert settings.pseudonym_key == "from-the-file"


def test_the_config_file_may_move_the_home(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    config = tmp_path / "valueloop.yaml"
    config.write_text(f"home: {elsewhere}\n")
    settings = load_settings({"VALUELOOP_CONFIG": str(config)})
    assert (settings.home, settings.sources["home"]) == (elsewhere, f"file {config}")
    assert settings.artifact_root == f"{elsewhere}/artifacts"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mlflow: x\ncolour: blue\n", "unknown setting(s) colour, mlflow; known: home, database_url"),
        ("- a list\n", "expected a mapping of settings"),
        ("home: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_config_file_is_named(tmp_path, text, message):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(InvalidInput) as bad:
        load_settings({"VALUELOOP_HOME": str(tmp_path)})
    assert str(bad.value).startswith(f"config file {config}: ")
    assert message in str(bad.value)

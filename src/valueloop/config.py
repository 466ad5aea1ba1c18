"""Effective settings, layered: defaults < config file < ``VALUELOOP_*`` environment variables.

Each value remembers where it came from so ``valueloop config`` can say so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from valueloop.errors import InvalidInput

#: Settings users may set, with a one-line description each.
FIELDS: dict[str, str] = {
    "home": "directory holding valueloop's local state",
    "database_url": "SQLAlchemy URL of the metadata database",
    "migration_database_url": "SQLAlchemy URL that migrations run as, the schema owner (empty: database_url)",
    "mlflow_uri": "MLflow tracking and registry URI",
    "artifact_root": "directory (or URI) for model and dataset artifacts",
    "redis_url": "Redis URL for streaming",
    "pseudonym_key": "secret key for keyed pseudonymization (HMAC-SHA256)",
}
SECRET_FIELDS = {"pseudonym_key"}


@dataclass(frozen=True)
class Setting:
    value: str
    source: str


@dataclass(frozen=True)
class Settings:
    """The effective configuration; ``sources`` tells where each value came from."""

    home: Path
    database_url: str
    migration_database_url: str
    mlflow_uri: str
    artifact_root: str
    redis_url: str
    pseudonym_key: str
    sources: dict[str, str]

    def as_env(self) -> dict[str, str]:
        """The ``VALUELOOP_*`` variables that make a subprocess see exactly these settings."""
        return {f"VALUELOOP_{name.upper()}": str(getattr(self, name)) for name in FIELDS}

    def describe(self) -> dict[str, Setting]:
        shown = {}
        for name in FIELDS:
            value = str(getattr(self, name))
            if name in SECRET_FIELDS and self.sources[name] != "default":
                value = "***"
            shown[name] = Setting(value, self.sources[name])
        return shown


def _defaults(home: Path) -> dict[str, str]:
    return {
        "database_url": f"sqlite:///{home / 'valueloop.db'}",
        # On PostgreSQL the server runs as a role that may not alter the audit table.
        "migration_database_url": "",
        "mlflow_uri": f"sqlite:///{home / 'mlflow.db'}",
        "artifact_root": str(home / "artifacts"),
        "redis_url": "redis://127.0.0.1:6379/0",
        # A fixed development key: fine for the demo, flagged by `valueloop config`.
        "pseudonym_key": "valueloop-development-key-change-me",
    }


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"config file {path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"config file {path}: expected a mapping of settings")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise InvalidInput(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(FIELDS)}"
        )
    return {k: str(v) for k, v in data.items()}


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from the environment (``os.environ`` unless given) and the config file."""
    env = dict(os.environ) if env is None else env
    values: dict[str, str] = {}
    sources: dict[str, str] = {}

    if "VALUELOOP_HOME" in env:
        home, sources["home"] = Path(env["VALUELOOP_HOME"]), "env VALUELOOP_HOME"
    else:
        home, sources["home"] = Path.home() / ".valueloop", "default"
    home = home.expanduser().resolve()

    config_path = Path(env.get("VALUELOOP_CONFIG", home / "config.yaml")).expanduser()
    from_file = _read_file(config_path) if config_path.is_file() else {}
    if "home" in from_file and "VALUELOOP_HOME" not in env:
        home = Path(from_file["home"]).expanduser().resolve()
        sources["home"] = f"file {config_path}"

    for name, default in _defaults(home).items():
        env_name = f"VALUELOOP_{name.upper()}"
        if env_name in env:
            values[name], sources[name] = env[env_name], f"env {env_name}"
        elif name in from_file:
            values[name], sources[name] = from_file[name], f"file {config_path}"
        else:
            values[name], sources[name] = default, "default"
    return Settings(home=home, sources=sources, **values)

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
    "mlflow_ui_url": "address of MLflow's own UI, which the console links runs to (empty: no link)",
    "artifact_root": "folder or s3://BUCKET/PREFIX for model and dataset artifacts",
    "prediction_log": "folder or s3://BUCKET/PREFIX of the prediction log, shared by every replica and worker",
    "s3_endpoint_url": "address of an S3-compatible server (empty: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS)",
    "s3_region": "the object store's region (empty: AWS_REGION, else us-east-1)",
    "s3_access_key_id": "the object store's access key (empty: the AWS variables or ~/.aws files)",
    "s3_secret_access_key": "the object store's secret key (empty: the AWS variables or ~/.aws files)",
    "redis_url": "Redis URL for streaming",
    "pseudonym_key": "secret key for keyed pseudonymization (HMAC-SHA256)",
    "retired_pseudonym_keys": "earlier pseudonym keys (comma-separated): an erasure finds the rows pseudonymized under them",
    "allow_development_key": "true: ingest may use the development key outside the demo",
    "url_variables": "variables a SQL source's URL may expand as ${VAR} (comma-separated)",
    "hook_modules": "modules a use case may name as Python hooks (@project: its folder's)",
    "backup_dir": "folder where `valueloop server` keeps scheduled backups (empty: none are taken)",
    "backup_every": "how often the server takes a scheduled backup (a duration: 1d, 12h)",
    "backup_keep_daily": "scheduled backups kept: the newest of each of the last N days",
    "backup_keep_weekly": "scheduled backups kept besides: the newest of each of the last M weeks",
}
SECRET_FIELDS = {"pseudonym_key", "retired_pseudonym_keys", "s3_secret_access_key"}
#: Settings that hold a list (comma-separated in the environment) or a yes/no.
LIST_FIELDS = {"retired_pseudonym_keys", "url_variables", "hook_modules"}
FLAG_FIELDS = {"allow_development_key"}
_FLAGS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
          "0": False, "": False}
#: The key a fresh home starts with: published, so its pseudonyms are reversed by a dictionary.
DEVELOPMENT_KEY = "valueloop-development-key-change-me"
#: A file in a home that the demo made: its synthetic data may be pseudonymized with the development key.
DEMO_MARKER = "demo-workspace"


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
    mlflow_ui_url: str
    artifact_root: str
    prediction_log: str
    s3_endpoint_url: str
    s3_region: str
    s3_access_key_id: str
    s3_secret_access_key: str
    redis_url: str
    pseudonym_key: str
    retired_pseudonym_keys: tuple[str, ...]
    allow_development_key: bool
    url_variables: tuple[str, ...]
    hook_modules: tuple[str, ...]
    backup_dir: str
    backup_every: str
    backup_keep_daily: str
    backup_keep_weekly: str
    sources: dict[str, str]

    def as_env(self) -> dict[str, str]:
        """The ``VALUELOOP_*`` variables that make a subprocess see exactly these settings."""
        return {f"VALUELOOP_{name.upper()}": _text(getattr(self, name)) for name in FIELDS}

    def describe(self) -> dict[str, Setting]:
        """Each value as it may be shown: a secret as ``***`` unless it is the default (a
        pseudonym key with its key id, which the dataset versions' lineage names), and a URL
        without its password."""
        shown = {}
        for name in FIELDS:
            value = _text(getattr(self, name))
            if name in SECRET_FIELDS and self.sources[name] != "default":
                if name == "pseudonym_key":
                    value = f"*** (key id {key_id(value)})"
                elif name == "retired_pseudonym_keys":
                    value = f"*** (key ids {', '.join(map(key_id, self.retired_pseudonym_keys))})"
                else:
                    value = "***"
            shown[name] = Setting(hide_password(value), self.sources[name])
        return shown


def _text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _typed(name: str, text: str, source: str) -> Any:
    if name in LIST_FIELDS:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if name in FLAG_FIELDS:
        if text.strip().lower() not in _FLAGS:
            raise InvalidInput(f"{name} ({source}): must be true or false, got {text!r}")
        return _FLAGS[text.strip().lower()]
    return text


def hide_password(url: str) -> str:
    """``url`` with its password shown as ``***``, as SQLAlchemy renders it; text that is no URL
    comes back as it is, and a URL SQLAlchemy cannot parse is shown by its scheme only."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.partition("://")[0] + "://***"


def _defaults(home: Path) -> dict[str, str]:
    return {
        "database_url": f"sqlite:///{home / 'valueloop.db'}",
        # On PostgreSQL the server runs as a role that may not alter the audit table.
        "migration_database_url": "",
        "mlflow_uri": f"sqlite:///{home / 'mlflow.db'}",
        "mlflow_ui_url": "",
        "artifact_root": str(home / "artifacts"),
        "prediction_log": str(home / "predictions"),
        # Empty: the AWS SDKs' own variables and files decide, as for any AWS tool.
        "s3_endpoint_url": "",
        "s3_region": "",
        "s3_access_key_id": "",
        "s3_secret_access_key": "",
        "redis_url": "redis://127.0.0.1:6379/0",
        # A fixed development key: fine for the demo, flagged by `valueloop config`.
        "pseudonym_key": DEVELOPMENT_KEY,
        "retired_pseudonym_keys": "",
        "allow_development_key": "false",
        # Nothing by default: a use case file must not read the server's environment or run
        # the server's Python unless its operator says so.
        "url_variables": "",
        "hook_modules": "",
        "backup_dir": "",
        "backup_every": "1d",
        "backup_keep_daily": "7",
        "backup_keep_weekly": "4",
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
    return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in data.items()}


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from the environment (``os.environ`` unless given) and the config file.

    The process's own settings (no ``env`` given) also set its object-store variables: see
    :func:`valueloop.storage.use_settings`."""
    own = env is None
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
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
        values[name] = _typed(name, values[name], sources[name])
    settings = Settings(home=home, sources=sources, **values)
    if own:
        from valueloop.storage import use_settings

        use_settings(settings)
    return settings


def key_id(key: str) -> str:
    """A pseudonym key's public fingerprint for the lineage: tells keys apart, reveals none."""
    import hashlib
    import hmac

    return hmac.new(key.encode(), b"valueloop pseudonym key id", hashlib.sha256).hexdigest()[:16]


def mark_demo(home: Path) -> None:
    """Mark ``home`` as the demo's: its data is synthetic, so the development key may treat it."""
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("Made by `valueloop demo`: its synthetic data may be pseudonymized "
                                    "with the development key.\n")


def is_demo(home: Path) -> bool:
    return (home / DEMO_MARKER).is_file()

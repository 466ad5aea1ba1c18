"""A backup of a PostgreSQL metadata database hands ``pg_dump`` its password in the environment:
a command line is readable by every local user (``ps``, /proc/PID/cmdline)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from valueloop.config import Settings, load_settings
from valueloop.recovery.backup import _pg_tool, backup


def test_pg_dump_gets_the_password_in_its_environment_never_on_its_command_line(
        tmp_path: Path, postgres_server: str, postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    role, password = f"r_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    with psycopg.connect(postgres_server.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    host, database = postgres_database.split("@", 1)[1].rsplit("/", 1)
    settings = load_settings({"VALUELOOP_HOME": str(tmp_path / "home"),
                              "VALUELOOP_DATABASE_URL": f"postgresql+psycopg://{role}:{password}@{host}/{database}"})
    # a pg_dump first on PATH that writes down what it was given, then runs the real one
    real, seen = _pg_tool("pg_dump", settings.database_url), tmp_path / "seen"
    wrapper = tmp_path / "bin" / "pg_dump"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" "PGPASSWORD=$PGPASSWORD" >> {seen}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{Path(real).parent}")

    manifest = backup(settings, tmp_path / "backup")
    assert manifest.metadata == "postgresql" and (tmp_path / "backup" / "metadata.dump").stat().st_size > 0
    lines = seen.read_text().splitlines()
    given = [line for line in lines if not line.startswith("PGPASSWORD=")]
    assert any(line.endswith(f"@{host}/{database}") for line in given), lines  # it was the one run
    assert not any(password in line for line in given), lines
    assert f"PGPASSWORD={password}" in lines
    assert password not in manifest.model_dump_json()


def test_a_backup_keeps_the_home_s_settings_but_none_of_its_keys(settings: Settings, tmp_path: Path) -> None:
    """A backup travels (another disk, another team): the pseudonym keys, the current and the
    retired, would let anyone holding it compute the pseudonym of a guessed value."""
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "config.yaml").write_text(
        "pseudonym_key: the-current-key\nretired_pseudonym_keys: [the-key-before, the-first-key]\n"
        "backup_keep_daily: 3\n")
    backup(settings, tmp_path / "backup")
    kept = (tmp_path / "backup" / "config.yaml").read_text()
    assert "backup_keep_daily: 3" in kept
    assert not any(key in kept for key in ("the-current-key", "the-key-before", "the-first-key")), kept

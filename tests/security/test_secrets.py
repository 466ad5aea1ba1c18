"""Secrets stay secret: the pseudonym key, database passwords, and the server's Python.

The attacks: ``${VALUELOOP_PSEUDONYM_KEY}`` in a SQL source's URL was expanded and stored in the
lineage; ``valueloop config`` printed database passwords; the development key pseudonymized
real data without a word (an HMAC under a published key is reversed by a dictionary); a use
case file named any module as a hook and the server imported it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from data.data_support import SMALL_EXPORT, ingest, read, update, versions

from valueloop.config import DEMO_MARKER, DEVELOPMENT_KEY, Settings, key_id
from valueloop.errors import InvalidInput
from valueloop.examples import load_generator




def _keyed(settings: Settings, key: str) -> Settings:
    return dataclasses.replace(settings, pseudonym_key=key)


# -- the development key ----------------------------------------------------------------------

def test_the_development_key_is_refused_outside_the_demo(settings: Settings, churn: Path) -> None:
    assert settings.pseudonym_key == DEVELOPMENT_KEY
    (settings.home / DEMO_MARKER).unlink()  # a home the demo did not make
    with pytest.raises(InvalidInput, match=r"pseudonym_key: .*development key.*allow_development_key "
                                           r"\(VALUELOOP_ALLOW_DEVELOPMENT_KEY\)"):
        ingest(settings, churn)
    assert versions(settings) == []
    allowed = dataclasses.replace(settings, allow_development_key=True)
    assert ingest(allowed, churn).version == 0


def test_the_demo_workspace_keeps_the_development_key(settings: Settings, churn: Path) -> None:
    assert (settings.home / DEMO_MARKER).is_file()
    assert ingest(settings, churn).treatments["email"]["key_id"] == key_id(DEVELOPMENT_KEY)


def test_the_key_id_is_in_the_lineage_never_the_key(settings: Settings, churn: Path) -> None:
    keyed = _keyed(settings, "a-real-secret-of-the-team")
    version = ingest(keyed, churn)
    assert version.treatments["email"]["key_id"] == key_id("a-real-secret-of-the-team")
    assert len(key_id("a-real-secret-of-the-team")) == 16
    assert "a-real-secret-of-the-team" not in json.dumps(version.model_dump(mode="json"))
    assert "key_id" not in version.treatments["postcode"]  # only pseudonyms depend on the key


def test_a_rotated_key_gives_new_pseudonyms_in_a_new_version(settings: Settings, churn: Path) -> None:
    old, new = _keyed(settings, "the-key-of-2025"), _keyed(settings, "the-key-of-2026")
    first = ingest(old, churn)
    with pytest.raises(InvalidInput, match=r"mode: append .*key .*"
                                           + key_id("the-key-of-2025") + r".*overwrite"):
        ingest(new, churn, mode="append")
    second = ingest(new, churn, mode="overwrite")
    assert second.version == first.version + 1
    assert second.treatments["email"]["key_id"] != first.treatments["email"]["key_id"]
    before, after = (read(settings, v.version).column("email").to_pylist() for v in (first, second))
    assert len(before) == len(after) == SMALL_EXPORT
    assert all(a != b for a, b in zip(before, after, strict=True))
    assert read(settings, first.version).column("email").to_pylist() == before  # history keeps its pseudonyms


# -- ${VAR} in a SQL source's URL -------------------------------------------------------------

def _sqlite_crm(path: Path) -> None:
    rows = load_generator("churn").generate(SMALL_EXPORT, seed=7).to_pylist()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE crm (" + ", ".join(rows[0]) + ")")
        db.executemany(f"INSERT INTO crm VALUES ({', '.join('?' * len(rows[0]))})",
                       [tuple(r.values()) for r in rows])


def _sql_source(settings: Settings, url: str) -> None:
    update(settings, lambda d: d.update(sources=[{"name": "customers", "kind": "sql", "url": url,
                                                   "query": "SELECT * FROM crm"}]))


@pytest.mark.parametrize("allowed", [(), ("VALUELOOP_PSEUDONYM_KEY",)])
def test_valueloop_s_own_secrets_are_never_expanded_in_a_url(
    settings: Settings, churn: Path, monkeypatch: pytest.MonkeyPatch, allowed: tuple[str, ...],
) -> None:
    key = "key-in-the-environment"
    monkeypatch.setenv("VALUELOOP_PSEUDONYM_KEY", key)
    _sqlite_crm(churn / f"{key}.db")
    _sql_source(settings, f"sqlite:///{churn}/${{VALUELOOP_PSEUDONYM_KEY}}.db")
    with pytest.raises(InvalidInput, match=r"sources.customers.url: \$\{VALUELOOP_PSEUDONYM_KEY\} .*never") as refused:
        ingest(dataclasses.replace(settings, url_variables=allowed), churn)
    assert key not in str(refused.value)


def test_only_the_allowed_variables_are_expanded(settings: Settings, churn: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _sqlite_crm(churn / "crm.db")
    monkeypatch.setenv("CRM_DATABASE", f"sqlite:///{churn}/crm.db")
    _sql_source(settings, "${CRM_DATABASE}")
    with pytest.raises(InvalidInput, match=r"sources.customers.url: \$\{CRM_DATABASE\} is not among the variables "
                                           r"the setting url_variables \(VALUELOOP_URL_VARIABLES\) allows"):
        ingest(settings, churn)
    version = ingest(dataclasses.replace(settings, url_variables=("CRM_DATABASE",)), churn)
    assert version.row_count == SMALL_EXPORT and version.source_fingerprints["customers"]["database"].endswith("crm.db")


def test_a_sqlite_source_outside_the_project_is_refused(settings: Settings, churn: Path) -> None:
    """The metadata database (users, tokens, audit) is one sqlite URL away."""
    _sql_source(settings, f"sqlite:///{settings.home}/valueloop.db")
    with pytest.raises(InvalidInput, match=r"sources.customers.url: .*outside the project folder"):
        ingest(settings, churn)


def test_a_password_never_reaches_an_error_message(settings: Settings, churn: Path) -> None:
    for url in ("postgresql+psycopg://crm:hunter2@127.0.0.1:1/crm", "postgresql+psycopg://crm:hunter2@host:port/crm",
                "nosuchdialect://crm:hunter2@host/crm"):
        _sql_source(settings, url)
        with pytest.raises(InvalidInput, match="sources.customers") as refused:
            ingest(settings, churn)
        assert "hunter2" not in str(refused.value)


def test_valueloop_config_masks_passwords(settings: Settings, run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    secret = dataclasses.replace(
        settings, database_url="postgresql+psycopg://valueloop:hunter2@db.example:5432/valueloop",
        migration_database_url="postgresql+psycopg://owner:hunter3@db.example:5432/valueloop",
        redis_url="redis://:hunter4@redis.example:6379/0", mlflow_uri="postgresql://ml:hunter5@db.example/mlflow",
        pseudonym_key="hunter6")
    for args in (["config"], ["config", "--json"]):
        shown = run_cli(secret, *args)
        assert shown.returncode == 0, shown.stderr
        assert not any(f"hunter{i}" in shown.stdout + shown.stderr for i in range(2, 7))
        assert "db.example" in shown.stdout and "***" in shown.stdout


# -- Python hooks -----------------------------------------------------------------------------

@pytest.fixture
def evil_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """An importable module that leaves a file behind when it is imported: (its folder, the file)."""
    folder = Path(tempfile.mkdtemp(prefix="vlhook_", dir="/tmp"))
    imported = folder / "imported"
    (folder / "evil.py").write_text(f"open({str(imported)!r}, 'w').close()\n\ndef run(*args):\n    return args[0]\n")
    monkeypatch.syspath_prepend(str(folder))
    yield folder, imported
    shutil.rmtree(folder, ignore_errors=True)


def test_a_python_transform_from_a_module_not_allowed_is_refused(
    settings: Settings, churn: Path, evil_module: tuple[Path, Path],
) -> None:
    _, imported = evil_module
    update(settings, lambda d: d["data"].update(transform=None, python="evil:run"))
    with pytest.raises(InvalidInput, match=r"data.python: module evil is not allowed: .*hook_modules "
                                           r"\(VALUELOOP_HOOK_MODULES\)"):
        ingest(settings, churn)
    assert not imported.exists()


def test_a_python_transform_cannot_climb_out_of_the_project(
    settings: Settings, churn: Path, evil_module: tuple[Path, Path],
) -> None:
    folder, imported = evil_module
    climbing = "." * 2 + ".".join(folder.parts[1:]) + ".evil:run"  # once read as //tmp/vlhook_…/evil.py
    update(settings, lambda d: d["data"].update(transform=None, python=climbing))
    with pytest.raises(InvalidInput, match=r"data.python: "):
        ingest(dataclasses.replace(settings, hook_modules=("@project",)), churn)
    assert not imported.exists()


def test_a_project_module_is_a_hook_only_when_the_setting_allows_it(settings: Settings, churn: Path) -> None:
    (churn / "features.py").write_text("def build(sources):\n    return sources['customers']\n")
    update(settings, lambda d: d["data"].update(transform=None, python="features:build"))
    with pytest.raises(InvalidInput, match=r"data.python: module features is not allowed: .*hook_modules"):
        ingest(settings, churn)
    assert ingest(dataclasses.replace(settings, hook_modules=("@project",)), churn).row_count == SMALL_EXPORT


def test_a_custom_candidate_from_a_module_not_allowed_is_refused(
    settings: Settings, churn: Path, evil_module: tuple[Path, Path],
) -> None:
    from valueloop.learn import training
    from valueloop.store import session

    _, imported = evil_module
    ingest(settings, churn)
    update(settings, lambda d: d["model"].update(candidates=[
        {"name": "logistic", "kind": "logistic", "params": {"max_iter": 200}},
        {"name": "evil", "kind": "custom", "function": "evil:run"}]))
    with session(settings) as s:
        report = training.train(s, settings, "dana", "churn")
    refused = {r.candidate: r for r in report.results}["evil"]
    assert refused.status == "failed"
    assert "module evil is not allowed" in (refused.error or "") and "hook_modules" in (refused.error or "")
    assert not imported.exists()


def test_an_unreachable_redis_is_named_without_its_password() -> None:
    import redis

    from valueloop.deploy.stream import RedisUnreachable, wait_until_reachable

    url = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
    with pytest.raises(RedisUnreachable) as refused:
        wait_until_reachable(redis.Redis.from_url(url, socket_connect_timeout=0.2), url, 0.3)
    assert "hunter2" not in str(refused.value) and "redis://:***@127.0.0.1:1/0" in str(refused.value)

"""The command line in server mode (issue 14, attack 5): with a control plane's URL and a token,
the CLI is a client of the API and acts as the token's user; ``--as`` names nobody, and the
client's home, with its database and pseudonym key, is never opened."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from cli.conftest import refused  # noqa: F401 - the CLI tests' check of a clean refusal
from outcomes.support import PHONE, add_people, churn_data, formulated
from server.conftest import Api, server  # noqa: F401 - the real-uvicorn fixture of the API tests
from typer.core import TyperGroup

from valueloop.cli import app
from valueloop.config import Settings
from valueloop.outcomes.privacy import history
from valueloop.outcomes.users import create_token, list_users
from valueloop.store import session

Client = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def client_home(tmp_path: Path) -> Path:
    """The client's VALUELOOP_HOME and HOME: empty, and to stay so in server mode."""
    home = tmp_path / "client"
    home.mkdir()
    return home


@pytest.fixture
def client(client_home: Path) -> Client:
    """Run ``valueloop ARGS`` in server mode against ``api`` with ``user``'s token."""

    def run(api: Api, user: str, *args: str, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("VALUELOOP_", "XDG_"))}
        clean.update(HOME=str(client_home), VALUELOOP_HOME=str(client_home), COLUMNS="200",
                     NO_COLOR="1", VALUELOOP_SERVER_URL=api.url, VALUELOOP_TOKEN=api.tokens[user])
        return subprocess.run([sys.executable, "-m", "valueloop", *args], env={**clean, **(env or {})},
                              cwd=cwd or client_home, capture_output=True, text=True, timeout=300)

    return run


def _statuses(settings: Settings) -> list[tuple[int, str, str | None]]:
    with session(settings) as s:
        return [(a.version, a.status, a.decided_by) for a in history(s, "admin", "churn")]


def test_as_names_nobody_in_server_mode(settings, server, client, client_home, refused):  # noqa: F811
    """Attack 5: anyone who could run the CLI acted as the privacy officer with ``--as pia``."""
    formulated(settings, submitted=True)
    api = server(settings)

    refused(client(api, "dana", "--as", "pia", "privacy", "approve", "churn"), 5,
            "error: --as pia: in server mode you act as your token's user")
    refused(client(api, "dana", "privacy", "approve", "churn", "--as=pia"), 5,
            "error: --as pia: in server mode you act as your token's user")
    refused(client(api, "dana", "privacy", "approve", "churn", env={"VALUELOOP_USER": "pia"}), 5,
            "error: VALUELOOP_USER=pia: in server mode you act as your token's user")
    assert _statuses(settings) == [(1, "pending", None)]
    refused(client(api, "dana", "privacy", "approve", "churn"), 6,
            "error: dana may not decide privacy on use case 'churn': requires role privacy_officer; "
            "dana has data_scientist")
    assert _statuses(settings) == [(1, "pending", None)]

    approved = client(api, "pia", "privacy", "approve", "churn", "-m", "fine")
    assert approved.returncode == 0, approved.stderr
    assert "approved by pia: fine" in approved.stdout
    assert _statuses(settings) == [(1, "approved", "pia")]
    assert list(client_home.iterdir()) == []


# --- the CLI flow both ways -----------------------------------------------------------------

#: what differs between two runs of the same flow: times, secrets, hashes
_VOLATILE = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"vl_[\w-]+"), "<token>"),
    (re.compile(r"[0-9a-f]{64}"), "<hash>"),
]


def _steps(project: Path) -> list[tuple[str, int, tuple[str, ...]]]:
    """(user, exit code, arguments) of the flow: every command that has a route, allowed and refused."""
    spec = str(project / "valueloop.yaml")
    return [
        ("olivia", 0, ("usecase", "create", spec, "--json")),
        ("ana", 0, ("usecase", "advance", "churn", "formulated")),
        ("olivia", 0, ("privacy", "submit", "churn", "--json")),
        ("dana", 6, ("privacy", "approve", "churn", "-c", "postcode=generalize:prefix=2")),
        ("pia", 0, ("privacy", "approve", "churn", "-c", "postcode=generalize:prefix=2", "-m", "regions only",
                    "--json")),
        ("dana", 0, ("privacy", "show", "churn")),
        ("olivia", 0, ("usecase", "advance", "churn", "in_development")),
        ("olivia", 2, ("usecase", "advance", "churn", "nowhere")),
        ("ana", 0, ("usecase", "update", str(project / "with-phone.yaml"))),
        ("pia", 0, ("privacy", "reject", "churn", "-m", "no phone numbers")),
        ("olivia", 0, ("privacy", "show", "churn", "--json")),
        ("olivia", 0, ("usecase", "show", "churn", "--json")),
        ("olivia", 3, ("usecase", "show", "nothing")),
        ("olivia", 0, ("usecase", "list")),
        ("ana", 0, ("usecase", "outcomes", "churn", "--kpi", "churn_rate=0.07")),
        ("olivia", 0, ("usecase", "add-member", "churn", "sam", "expert")),
        ("olivia", 0, ("usecase", "members", "churn", "--json")),
        ("olivia", 0, ("usecase", "remove-member", "churn", "sam", "expert")),
        ("ana", 6, ("usecase", "add-member", "churn", "sam", "expert")),
        ("admin", 0, ("users", "add", "zoe", "--email", "zoe@example.com")),
        ("olivia", 6, ("users", "add", "zed")),
        ("admin", 2, ("users", "add", "Not A Name")),
        ("admin", 0, ("users", "appoint", "zoe")),
        ("admin", 0, ("users", "appoint", "zoe", "--relieve", "--json")),
        ("olivia", 0, ("users", "list")),
        ("admin", 0, ("users", "list", "--json")),
        ("dana", 0, ("tokens", "create", "--name", "laptop", "--expires-in", "30d")),
        ("dana", 0, ("tokens", "list", "--json")),
        ("dana", 6, ("tokens", "list", "--all")),
        ("dana", 2, ("tokens", "create", "--expires-in", "soon")),
        ("olivia", 6, ("tokens", "revoke", "11")),
        ("dana", 3, ("tokens", "revoke", "999")),
        ("dana", 0, ("tokens", "revoke", "11")),
        ("olivia", 0, ("kpi", "record", "churn", "churn_rate", "0.09", "--at", "2026-05-01T12:00")),
        ("dana", 6, ("kpi", "record", "churn", "churn_rate", "0.07")),
        ("olivia", 0, ("kpi", "list", "churn", "--json")),
        ("oscar", 0, ("alerts", "list", "churn", "--json")),
        ("oscar", 3, ("alerts", "ack", "1")),
        ("dana", 6, ("monitor", "churn")),
        ("dana", 6, ("retrain", "churn")),
        ("dana", 0, ("data", "versions", "churn", "--json")),
        ("dana", 3, ("data", "show", "churn@0")),
        ("eve", 0, ("data", "versions", "churn")),
        ("dana", 0, ("runs", "churn", "--json")),
        ("dana", 0, ("models", "churn")),
        ("dana", 3, ("models", "churn", "champion")),
        ("olivia", 3, ("accept", "churn", "1", "-m", "good enough")),
        ("dana", 3, ("promote", "churn", "1", "--alias", "challenger")),
        ("dana", 0, ("audit", "churn", "--json")),
        ("pia", 0, ("audit", "churn", "--action", "privacy.", "--limit", "2")),
        ("dana", 0, ("audit", "--actor", "olivia", "--json")),
        ("dana", 0, ("audit", "verify")),
    ]


def _project(root: Path) -> Path:
    """The example project, and the same file after the team declared a phone column."""
    project = root / "project"
    project.mkdir(parents=True)
    data = churn_data()
    (project / "valueloop.yaml").write_text(yaml.safe_dump(data))
    data["privacy"]["columns"].append(PHONE)
    (project / "with-phone.yaml").write_text(yaml.safe_dump(data))
    return project


def _team(settings: Settings) -> None:
    """The churn team, each with a token, as the API tests' server fixture makes them."""
    add_people(settings)
    with session(settings) as s:
        for u in list_users(s, "admin"):
            create_token(s, u.name, "tests")


def _outcome(result: subprocess.CompletedProcess[str], homes: list[Path]) -> tuple[int, str, str]:
    def plain(text: str) -> str:
        for home in homes:
            text = text.replace(str(home), "<home>")
        for pattern, placeholder in _VOLATILE:
            text = pattern.sub(placeholder, text)
        return text

    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, plain(result.stdout), plain(result.stderr)


def test_the_cli_flow_reads_the_same_in_local_and_server_mode(tmp_path, run_cli, server, client,  # noqa: F811
                                                              client_home, new_settings):
    local, remote = new_settings(tmp_path / "local"), new_settings(tmp_path / "server")
    _team(local)
    add_people(remote)
    api = server(remote)
    homes = [tmp_path / "local", tmp_path / "server"]
    local_project, remote_project = _project(tmp_path / "l"), _project(tmp_path / "r")

    for (user, code, args), (*_, remote_args) in zip(_steps(local_project), _steps(remote_project), strict=True):
        here = _outcome(run_cli(local, *args, as_user=user, cwd=local_project), homes + [local_project])
        there = _outcome(client(api, user, *remote_args, cwd=remote_project), homes + [remote_project])
        assert here == there, (user, args)
        assert here[0] == code, (user, args, here)

    trail = json.loads(client(api, "dana", "audit", "churn", "--json").stdout)
    assert [(e["actor"], e["action"]) for e in trail][:6] == [
        ("olivia", "usecase.create"), ("ana", "usecase.advance"), ("olivia", "privacy.submit"),
        ("olivia", "usecase.advance"), ("pia", "privacy.approve"), ("pia", "usecase.advance")]
    assert list(client_home.iterdir()) == []


# --- commands without a route, and the login file ------------------------------------------


def _local_only() -> list[list[str]]:
    """Every command of the command line that has no control-plane route, by its words."""
    root = typer.main.get_command(app)

    def walk(command: Any, words: list[str]) -> Iterator[list[str]]:
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                yield from walk(sub, [*words, name])
        elif not getattr(command.callback, "served", False):
            yield words

    return list(walk(root, []))


def test_a_command_without_a_route_refuses_and_opens_nothing(settings, server, client, client_home,  # noqa: F811
                                                             refused):
    add_people(settings)
    api = server(settings)
    local_only = _local_only()
    assert {" ".join(w) for w in local_only} >= {"config", "demo", "serve", "batch", "stream", "server"}
    for words in local_only:
        refused(client(api, "dana", *words, "churn"), 2,
                f"error: {' '.join(words)}: has no control-plane route; it runs only in local mode, on the "
                "server's machine")
    refused(client(api, "dana", "audit", "verify", "--export"), 2,
            "error: --export: the heads file is in the home of the server")
    helped = client(api, "dana", "data", "ingest", "--help")
    assert helped.returncode == 0 and "Extract, treat, transform" in helped.stdout
    refused(client(api, "dana", "usecase", "list", env={"VALUELOOP_TOKEN": ""}), 5,
            "error: VALUELOOP_TOKEN is not set: server mode needs both VALUELOOP_SERVER_URL and VALUELOOP_TOKEN")
    assert list(client_home.iterdir()) == []


def test_login_keeps_the_token_for_its_user_only_and_logout_forgets_it(settings, server, tmp_path,  # noqa: F811
                                                                       refused):
    formulated(settings)
    api = server(settings)
    home, data = tmp_path / "laptop", tmp_path / "empty"
    home.mkdir()
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VALUELOOP_", "XDG_"))}
    env.update(HOME=str(home), VALUELOOP_HOME=str(data), COLUMNS="200", NO_COLOR="1")

    def cli(*args: str, token: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "valueloop", *args], env=env, input=token + "\n",
                              capture_output=True, text=True, timeout=300)

    credentials = home / ".config" / "valueloop" / "credentials"
    refused(cli("login", api.url, token="vl_not-a-token"), 5, "error: unknown token")
    assert not credentials.exists()

    logged_in = cli("login", api.url, token=api.tokens["olivia"])
    assert logged_in.returncode == 0, logged_in.stderr
    assert f"logged in to {api.url} as olivia" in logged_in.stdout
    assert api.tokens["olivia"] not in logged_in.stdout + logged_in.stderr
    assert (stat.S_IMODE(credentials.stat().st_mode), stat.S_IMODE(credentials.parent.stat().st_mode)) == (
        0o600, 0o700)
    listed = cli("usecase", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [u["name"] for u in json.loads(listed.stdout)] == ["churn"]
    refused(cli("--as", "pia", "usecase", "list"), 5, "error: --as pia: in server mode you act as your token's user")

    credentials.chmod(0o644)
    refused(cli("usecase", "list"), 5, f"error: {credentials}: readable by others; `chmod 600 {credentials}`")
    credentials.chmod(0o600)
    assert "logged out" in cli("logout").stdout
    assert not credentials.exists()
    assert list(data.iterdir()) == []
    refused(cli("usecase", "list"), 5, "error: no acting user: pass --as USER or set VALUELOOP_USER")


def test_data_learn_and_operate_commands_through_the_control_plane(settings, approved_usecase, server,  # noqa: F811
                                                                   client, client_home, run_cli, refused):
    """After a first ingest on the server's machine names the project folder, the team ingests,
    trains, reads, accepts, promotes, monitors and retrains from their own machines, each as their
    token's user, with the output of local mode."""
    from learn.learn_support import FAST, ingest, set_model

    name, project = approved_usecase(settings)
    set_model(settings, name, candidates=FAST[:1], threshold=0.6)
    ingest(settings, name, project, rows=800)
    api = server(settings)

    checked = client(api, "dave", "data", "check", name)
    assert checked.returncode == 0 and "0 error(s)" in checked.stdout, checked.stderr
    refused(client(api, "dave", "data", "ingest", name, "--project", "/etc"), 2,
            "error: --project /etc: in server mode the server reads the folder of the use case's last ingest")
    ingested = client(api, "dave", "data", "ingest", name, "--mode", "overwrite", "--json")
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["version"] == 1 and json.loads(ingested.stdout)["actor"] == "dave"
    trained = client(api, "dana", "train", name, "--json")
    assert trained.returncode == 0, trained.stderr
    version = str(json.loads(trained.stdout)["registered"]["version"])

    for user, args in [("dana", ("data", "versions", name)), ("olivia", ("data", "show", f"{name}@0", "--json")),
                       ("olivia", ("data", "show", name, "--rows", "2")), ("dana", ("data", "diff", f"{name}@0", name)),
                       ("eve", ("data", "profile", f"{name}@1", "--json")), ("dana", ("runs", name, "--json")),
                       ("dana", ("models", name, version)), ("dana", ("promote", name, version))]:
        here, there = run_cli(settings, *args, as_user=user), client(api, user, *args)
        assert (there.returncode, there.stdout, there.stderr) == (here.returncode, here.stdout, here.stderr), args

    accepted = client(api, "olivia", "accept", name, version, "-m", "good enough to call customers")
    assert accepted.returncode == 0, accepted.stderr
    assert "acceptance accepted by olivia: good enough to call customers" in accepted.stdout
    promoted = client(api, "dana", "promote", name, version)
    assert promoted.returncode == 0, promoted.stderr
    assert f"{name} v{version} is now champion" in promoted.stdout
    # a rollback goes through the control plane too, its refusal read back as locally (exit 4)
    rolled = client(api, "dana", "rollback", name)
    assert rolled.returncode == 4 and f"version {version} became champion with no champion before it" \
        in rolled.stderr, rolled.stderr
    run = json.loads(client(api, "dana", "runs", name, "--json").stdout)[0]["run_id"]
    reproduced = client(api, "dana", "reproduce", run)
    assert reproduced.returncode == 0 and "metrics match" in reproduced.stdout, reproduced.stderr

    monitored = client(api, "oscar", "monitor", name, "--json")
    assert monitored.returncode == 0, monitored.stderr
    assert json.loads(monitored.stdout)["usecase"] == name
    retrained = client(api, "oscar", "retrain", name, "--json")
    assert json.loads(retrained.stdout)["requested_by"] == "oscar", retrained.stderr
    assert list(client_home.iterdir()) == []

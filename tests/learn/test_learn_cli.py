"""The Learn commands as a user runs them: a subprocess on the test's settings."""

from __future__ import annotations

import json

from valueloop.config import Settings


def test_train_accept_promote_from_the_command_line(settings: Settings, churn, run_cli) -> None:
    name, _ = churn
    trained = run_cli(settings, "train", name, "--json", as_user="dana")
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    version = report["registered"]["version"]
    assert {r["candidate"] for r in report["results"]} == {"logistic", "lightgbm"}

    table = run_cli(settings, "train", name, "--candidate", "logistic", as_user="dana")
    assert table.returncode == 0, table.stderr
    assert "logistic" in table.stdout and "registered churn v" in table.stdout

    listed = run_cli(settings, "models", name, "--json", as_user="olivia")
    assert [m["version"] for m in json.loads(listed.stdout)] == [version, version + 1]

    refused = run_cli(settings, "promote", name, str(version), as_user="dana")
    assert refused.returncode == 7
    assert "cannot become champion: the owner has not accepted it" in refused.stderr
    assert "Traceback" not in refused.stderr

    accepted = run_cli(settings, "accept", name, str(version), "-m", "good enough to call customers",
                       as_user="olivia")
    assert accepted.returncode == 0, accepted.stderr
    assert "evaluation next to the targets" in accepted.stdout and "accepted" in accepted.stdout

    promoted = run_cli(settings, "promote", name, str(version), as_user="dana")
    assert promoted.returncode == 0, promoted.stderr
    assert f"{name} v{version} is now champion" in promoted.stdout

    runs = json.loads(run_cli(settings, "runs", name, "--json", as_user="dana").stdout)
    assert len(runs) == 3 and {r["status"] for r in runs} == {"finished"}
    again = run_cli(settings, "reproduce", runs[0]["run_id"], as_user="dana")
    assert again.returncode == 0, again.stderr
    assert "metrics match" in again.stdout

    bad = run_cli(settings, "train", name, "--candidate", "nope", as_user="dana")
    assert bad.returncode == 2 and "candidate: nope not declared" in bad.stderr


#: the command line in a process that also registers an exit handler, holds an object whose
#: finalizer speaks when the interpreter tears its modules down, and runs a thread (not a daemon)
#: that still has work to finish when the command is done
_WATCHED = """
import atexit, sys, threading
from valueloop import heap
from valueloop.cli import main

class Kept:
    def __del__(self):
        print("torn down", file=sys.stderr)

def finish_late():
    done.wait()
    threading.Event().wait(1)
    print("thread finished", file=sys.stderr)

kept = Kept()
done = threading.Event()
leave = heap.leave
heap.leave = lambda code: (done.set(), leave(code))
atexit.register(lambda: print("exit handlers ran", file=sys.stderr))
threading.Thread(target=finish_late).start()
sys.argv = ["valueloop", *sys.argv[1:]]
main()
"""


def test_a_training_leaves_without_tearing_its_modules_down(settings: Settings, churn) -> None:
    """Freeing a training's thousands of modules and its data object by object took seconds of
    its wall time: it ends once its output is out and its exit handlers ran (its drawing worker
    stopped). A command that is not one-shot exits as usual."""
    import os
    import subprocess
    import sys

    name, _ = churn
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUELOOP_")} | settings.as_env()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", _WATCHED, "--as", "dana", *args], env=env,
                              capture_output=True, text=True, timeout=300)

    trained = run("train", name, "--candidate", "logistic", "--json")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["registered"]["version"] == 1
    assert "exit handlers ran" in trained.stderr and "torn down" not in trained.stderr
    assert "thread finished" in trained.stderr  # what the interpreter waits for, it waits for
    listed = run("runs", name, "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 1
    assert "exit handlers ran" in listed.stderr and "torn down" in listed.stderr
    assert "thread finished" in listed.stderr

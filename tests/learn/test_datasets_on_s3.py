"""Dataset tables on the object store: with ``artifact_root`` an s3:// prefix on a real
S3-compatible server (moto's), ingest in each mode, time travel, training on an old version and
an erasure's rewrite, retention's vacuum and the doctor's repair of a killed commit work as on local disk, and no table is written locally."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pytest
from data.data_support import churn_with_export, ingest, read, update, versions
from learn_support import FAST, set_model, untimed

from valueloop.config import Settings
from valueloop.examples import load_generator
from valueloop.storage import Location


@pytest.fixture
def on_s3(settings: Settings, s3_bucket: str) -> Settings:
    return dataclasses.replace(settings, artifact_root=f"{s3_bucket}/artifacts")


def _stored(settings: Settings) -> set[str]:
    root = Location.parse(settings.artifact_root, "t").child("datasets")
    infos = root.filesystem.get_file_info(pafs.FileSelector(root.path, recursive=True, allow_not_found=True))
    return {i.path.removeprefix(root.path + "/") for i in infos if i.type == pafs.FileType.File}


def test_dataset_versions_live_on_s3(on_s3: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]],
                                    empty_mlflow_db: Path) -> None:
    import shutil

    from valueloop.learn.training import train
    from valueloop.demo.outcomes import POSTCODE_TO_REGION
    from valueloop.operate.erasure import erase
    from valueloop.operate.retention import enforce
    from valueloop.outcomes import privacy
    from valueloop.store import session

    project = churn_with_export(on_s3, approved_usecase, 500)
    first = ingest(on_s3, project)
    assert first.uri == f"{on_s3.artifact_root}/datasets/churn" and first.row_count == 500
    load_generator("churn").write(project / "data", rows=300, seed=8)
    second = ingest(on_s3, project, mode="overwrite")
    load_generator("churn").write(project / "data", rows=200, seed=9, period=1)  # new customers
    update(on_s3, lambda d: d["sources"][0].update(path="data/customers_period1.csv"))
    appended = ingest(on_s3, project, mode="append")
    assert [first.version, second.version, appended.version] == versions(on_s3) == [0, 1, 2]
    assert appended.row_count == 500 and read(on_s3, 2).num_rows == 500
    assert read(on_s3, 0).num_rows == 500 and read(on_s3, 1).num_rows == 300  # time travel
    assert any(p.startswith("churn/_delta_log/") for p in _stored(on_s3))
    assert len([p for p in _stored(on_s3) if p.startswith("churn/part-")]) == 3
    assert not (on_s3.home / "artifacts").exists(), "nothing written to the local artifact folder"

    mlflow_db = Path(on_s3.mlflow_uri.removeprefix("sqlite:///"))
    shutil.copy(empty_mlflow_db, mlflow_db)
    set_model(on_s3, "churn", candidates=FAST[:1], threshold=0.5, tests=untimed(on_s3, "churn"))
    with session(on_s3) as s:
        report = train(s, on_s3, "dana", "churn", dataset_version=0)
    assert report.dataset_version == 0

    # an erasure rewrites the newest version on S3 and deletes the appended file that held the subject
    email = pacsv.read_csv(project / "data" / "customers_period1.csv")["email"][0].as_py()
    erased = erase(on_s3, "pia", "churn", "email", email)
    assert (erased.dataset_rows, erased.dataset_version, erased.dataset_versions_removed) == (1, 3, [2])
    assert erased.dataset_files_deleted == 1 and read(on_s3, 3).num_rows == 499 and read(on_s3, 0).num_rows == 500

    # retention vacuums the superseded files on S3, keeping version 0's: a model was trained on it
    update(on_s3, lambda d: [c.update(retention="1s") for c in d["privacy"]["columns"] if c["treatment"] != "drop"])
    with session(on_s3) as s:
        privacy.approve(s, "pia", "churn", [POSTCODE_TO_REGION])
    vacuumed = enforce(on_s3, "oscar", "churn")
    assert (vacuumed.dataset_versions_kept_for_models, vacuumed.dataset_versions_removed) == ([0], [1])
    assert read(on_s3, 0).num_rows == 500 and read(on_s3, 3).num_rows == 499
    assert len([p for p in _stored(on_s3) if p.startswith("churn/part-")]) == 2


def test_doctor_rolls_back_a_killed_commit_on_s3(s3_bucket: str, tmp_path: Path,
                                                approved_usecase: Callable[[Settings], tuple[str, Path]],
                                                run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """On SQLite only: the metadata database is not what this tests."""
    from valueloop.config import load_settings

    on_s3 = load_settings({"VALUELOOP_HOME": str(tmp_path / "home"), "VALUELOOP_ARTIFACT_ROOT": f"{s3_bucket}/a"})
    project = churn_with_export(on_s3, approved_usecase, 300)
    killed = run_cli(on_s3, "data", "ingest", "churn", "--project", str(project), as_user="dave",
                     env={"VALUELOOP_TEST_CRASH_AT": "after-delta-commit"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert any(p.startswith("churn/_delta_log/") for p in _stored(on_s3))

    done = run_cli(on_s3, "doctor", "--json", "--repair", "--usecase", "churn", as_user="admin")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    found = json.loads(done.stdout)["findings"]
    assert {f["kind"] for f in found} == {"pending intent", "unrecorded Delta versions"}
    assert all(f["repaired"] for f in found)
    assert not any(p.startswith("churn/") for p in _stored(on_s3)), "the unrecorded table is gone"
    again = run_cli(on_s3, "data", "ingest", "churn", "--json", as_user="dave", cwd=project)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["version"] == 0 and read(on_s3).num_rows == 300


def test_backup_and_restore_refuse_tables_on_s3_saying_how_to_back_them_up(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from valueloop.config import load_settings
    from valueloop.errors import InvalidInput
    from valueloop.recovery.backup import backup, restore

    settings = load_settings({"VALUELOOP_HOME": str(tmp_path / "home"), "VALUELOOP_ARTIFACT_ROOT": "s3://b/artifacts"})
    with pytest.raises(InvalidInput, match="artifact_root 's3://b/artifacts': backup copies a local folder and "
                                           "cannot copy an object store; back up the bucket's"):
        backup(settings, tmp_path / "backup")
    assert not (tmp_path / "backup").exists(), "nothing half-written"

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match="artifact_root 's3://b/artifacts': restore copies a local folder"):
        restore(settings, tmp_path / "backup")
    assert list(tmp_path.iterdir()) == [], "no folder named s3:, no home"


def test_the_object_store_reached_with_the_config_files_endpoint_and_keys_never_shown(
        s3_bucket: str, s3_server: str, approved_usecase: Callable[[Settings], tuple[str, Path]],
        tmp_path: Path) -> None:
    """No AWS variable in the environment: the endpoint and keys come from config.yaml, and the
    secret key shows up in no output, not even ``valueloop config``'s, nor in the audit trail."""
    import os
    import sys

    from valueloop.config import load_settings

    secret = "config-file-secret-5e9d"
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text(
        f"artifact_root: {s3_bucket}/artifacts\ns3_endpoint_url: {s3_server}\ns3_region: us-east-1\n"
        f"s3_access_key_id: valueloop-config\ns3_secret_access_key: {secret}\n")
    settings = load_settings({"VALUELOOP_HOME": str(home)})
    _, project = approved_usecase(settings)
    load_generator("churn").write(project / "data", rows=200, seed=7)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VALUELOOP_"))}
    env |= {"VALUELOOP_HOME": str(home), "COLUMNS": "200"}

    def cli(*args: str, user: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "valueloop", *args], env=env | {"VALUELOOP_USER": user},
                              capture_output=True, text=True, timeout=300)

    done = cli("data", "ingest", "churn", "--project", str(project), "--json", user="dave")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["uri"] == f"{s3_bucket}/artifacts/datasets/churn"
    assert any(p.startswith("churn/_delta_log/") for p in _stored(settings))
    shown = cli("config", "--json", user="admin")
    assert json.loads(shown.stdout)["s3_secret_access_key"] == {"value": "***", "source": f"file {home}/config.yaml"}
    assert json.loads(shown.stdout)["s3_endpoint_url"]["value"] == s3_server
    trail = cli("audit", "--json", user="admin")
    assert trail.returncode == 0, trail.stderr
    for output in (done, shown, trail):
        assert secret not in output.stdout + output.stderr

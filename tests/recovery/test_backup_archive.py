"""What a backup holds besides the home: a prediction log kept in a folder of its own; and the
backup as one ``.tar.gz`` archive, verified and restored as a folder is, whose members may not
reach outside the folder it is unpacked into."""

from __future__ import annotations

import io
import signal
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from valueloop.config import Settings, load_settings
from valueloop.deploy.predlog import PredictionLog
from valueloop.errors import Conflict, InvalidInput
from valueloop.recovery.backup import backup, restore, verify

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _with_log(settings: Settings, folder: Path | str) -> Settings:
    return load_settings({**settings.as_env(), "VALUELOOP_PREDICTION_LOG": str(folder)})


def _logged(settings: Settings) -> list[dict]:
    plog = PredictionLog(settings, "churn")
    plog.append([{"request_id": f"r{i}", "model_version": "1", "prediction": i % 2, "tenure_months": i}
                 for i in range(20)], source="rest")
    return plog.read().to_pylist()


def test_a_prediction_log_outside_the_home_is_backed_up_and_restored_into_the_new_log(
        settings: Settings, churn: Path, new_settings: Callable[[Path], Settings], tmp_path: Path) -> None:
    outside = _with_log(settings, tmp_path / "log")
    records = _logged(outside)
    manifest = backup(outside, tmp_path / "backup")
    assert any(name.startswith("predictions/churn/date=") for name in manifest.files), sorted(manifest.files)

    restored = _with_log(new_settings(tmp_path / "restored"), tmp_path / "restored-log")
    restore(restored, tmp_path / "backup")
    assert PredictionLog(restored, "churn").read().to_pylist() == records
    assert not (restored.home / "predictions").exists()
    again = _with_log(new_settings(tmp_path / "again"), tmp_path / "restored-log")
    with pytest.raises(Conflict, match=f"prediction_log {tmp_path / 'restored-log'} is not empty"):
        restore(again, tmp_path / "backup")  # two installations' logs are never merged
    assert not again.home.exists(), "nothing half-written"

    with pytest.raises(InvalidInput, match="prediction_log 's3://b/log': backup copies a local folder"):
        backup(_with_log(settings, "s3://b/log"), tmp_path / "refused")
    assert not (tmp_path / "refused").exists(), "nothing half-written"


def _rewritten(archive: Path, target: Path, change: Callable[[tarfile.TarInfo, bytes], bytes],
               extra: list[tarfile.TarInfo] = ()) -> Path:  # type: ignore[assignment]
    """A copy of the archive with each member's bytes passed through ``change``, plus ``extra``."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            data = change(member, data) if member.isfile() else data
            member.size = len(data)
            out.addfile(member, io.BytesIO(data) if member.isfile() else None)
        for member in extra:
            out.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return target


def test_a_backup_archive_round_trips_and_a_tampered_or_escaping_member_is_refused(
        settings: Settings, churn: Path, run_cli: Cli, new_settings: Callable[[Path], Settings],
        tmp_path: Path) -> None:
    records = _logged(settings)
    archive = tmp_path / "out" / "nightly.tar.gz"
    archive.parent.mkdir()
    killed = run_cli(settings, "backup", str(archive), as_user="admin",
                     env={"VALUELOOP_TEST_CRASH_AT": "backup-archive-written"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not [p for p in archive.parent.iterdir() if p.is_file()], "no archive that looks whole"
    taken = run_cli(settings, "backup", str(archive), as_user="admin")
    assert taken.returncode == 0, taken.stderr
    assert [p.name for p in archive.parent.iterdir() if p.is_file()] == ["nightly.tar.gz"]
    assert any(name.startswith("predictions/") for name in verify(archive).files)

    restored = new_settings(tmp_path / "restored")
    done = run_cli(restored, "restore", str(archive), as_user="admin")
    assert done.returncode == 0, done.stderr
    assert PredictionLog(restored, "churn").read().to_pylist() == records

    member = next(m.name for m in tarfile.open(archive) if m.name.startswith("predictions/"))
    tampered = _rewritten(archive, tmp_path / "tampered.tar.gz",
                          lambda m, data: b"changed" if m.name == member else data)
    refused = run_cli(settings, "backup", "verify", str(tampered))
    assert refused.returncode == 2 and f"{member}: digest differs" in refused.stderr, refused.stderr

    escaping = tarfile.TarInfo("../escaped")
    escaping.size = 1
    link = tarfile.TarInfo("home/link")
    link.type, link.linkname = tarfile.SYMTYPE, "config.yaml"
    for odd, name in ((escaping, "../escaped"), (link, "home/link")):
        bad = _rewritten(archive, tmp_path / "bad.tar.gz", lambda m, data: data, [odd])
        with pytest.raises(InvalidInput, match=f"backup: {bad} member {name!r}"):
            verify(bad)
    with pytest.raises(InvalidInput, match="not a valueloop backup"):
        verify(tmp_path / "missing.tar.gz")

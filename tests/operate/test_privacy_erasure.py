"""A data subject's erasure (issue 17): found through the keyed pseudonym ingest stored, removed
from every kept dataset version, the prediction log and the labels, until no file under the home
holds the pseudonym or the raw value; recorded without either; re-applied by a restore of a
backup taken before it; the privacy officer's alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from data.data_support import churn_with_export, ingest

from valueloop.config import Settings, key_id, load_settings
from valueloop.data import read_version
from valueloop.data.treatments import pseudonym
from valueloop.deploy.predlog import PredictionLog, _write_atomically
from valueloop.errors import Conflict, InvalidInput, PermissionDenied
from valueloop.learn.training import train
from valueloop.operate.erasure import erase, erasures
from valueloop.store import session


@pytest.fixture
def local(tmp_path: Path) -> Settings:
    """SQLite only, whose file the scan reads as well: the stores erased are files either way."""
    return load_settings({"VALUELOOP_HOME": str(tmp_path / "home")})


#: the scan, run in a process of its own: closing a file of the SQLite database in this process
#: would release the locks this process's connections hold on it (POSIX record locks)
_SCAN = """
import json, sys
from pathlib import Path
import pyarrow.parquet as pq
home, needles, found = Path(sys.argv[1]), sys.argv[2:], []
for path in sorted(p for p in home.rglob("*") if p.is_file()):
    if path.suffix == ".parquet":
        text = json.dumps(pq.read_table(path).to_pylist(), default=str)
    else:
        text = path.read_bytes().decode("latin-1")
    found += [f"{path.relative_to(home)}: {n[:12]}" for n in needles if n in text]
print(json.dumps(found))
"""


def holding(home: Path, *needles: str) -> list[str]:
    """Every file under ``home`` holding one of ``needles``: Parquet files (Delta's data and
    checkpoints, the prediction log, labels) by their values, every other file (the SQLite
    databases, Delta's log, the erasure ledger) by its bytes."""
    done = subprocess.run([sys.executable, "-c", _SCAN, str(home), *needles], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def test_an_erasure_leaves_no_file_holding_the_subject_and_a_restore_reapplies_it(
        local: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]], run_cli, tmp_path: Path) -> None:
    project = churn_with_export(local, approved_usecase, 600)
    ingest(local, project)
    ingest(local, project)  # overwrite: both versions hold every customer
    email = pacsv.read_csv(project / "data" / "customers.csv")["email"][0].as_py()
    stored = pseudonym(email, local.pseudonym_key)
    with session(local) as s:
        model = train(s, local, "dana", "churn", candidates=["logistic"]).registered
    plog = PredictionLog(local, "churn")
    plog.append(pa.table({"request_id": ["subject", "other"], "model_version": ["1", "1"], "prediction": [1, 0],
                          "email": [stored, "someone else"], "tenure_months": [3, 4]}), source="batch")
    _write_atomically(pa.table({"request_id": ["subject", "other"], "label": [1, 0],
                                "ts": pa.array([plog.read()["ts"][0].as_py()] * 2, pa.timestamp("us", tz="UTC")),
                                "labeled_by": ["eve", "eve"]}), plog.root.child("labels"))
    assert holding(local.home, stored)  # the scan finds the subject where the stores keep it
    assert run_cli(local, "backup", str(tmp_path / "backup"), as_user="admin").returncode == 0

    with pytest.raises(PermissionDenied, match="dana may not erase on use case 'churn': requires role privacy_officer"):
        erase(local, "dana", "churn", "email", email)
    with pytest.raises(InvalidInput, match="the DPIA drops 'name' at ingest"):
        erase(local, "pia", "churn", "name", "Jane Doe")
    with pytest.raises(InvalidInput, match="the DPIA generalizes 'birth_date'"):
        erase(local, "pia", "churn", "birth_date", "1980-01-01")
    done = run_cli(local, "privacy", "erase", "churn", "--subject", f"email={email}", "--json", as_user="pia")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["dataset_rows"], report["dataset_version"], report["predictions"], report["labels"]) == (1, 2, 1, 1)
    assert report["dataset_versions_removed"] == [0, 1] and report["erasure"]["models_to_retrain"] == [model.version]

    assert holding(local.home, stored, email) == []
    with session(local) as s:
        assert read_version(s, "churn").num_rows == 599
        with pytest.raises(Conflict, match="dataset version 1 of 'churn' can no longer be read: .* erasure"):
            read_version(s, "churn", 1)
    assert plog.read()["request_id"].to_pylist() == ["other"]
    listed = erasures(local, "olivia", "churn")
    assert [(e.column, e.by, e.awaiting_retraining) for e in listed] == [("email", "pia", [model.version])]
    assert stored not in listed[0].token and email not in listed[0].model_dump_json()

    restored = load_settings({"VALUELOOP_HOME": str(tmp_path / "restored")})
    back = run_cli(restored, "restore", str(tmp_path / "backup"), "--json", as_user="admin")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["erasures"][0]["dataset_rows"] == 1
    assert holding(restored.home, stored, email) == []
    with session(restored) as s:
        assert read_version(s, "churn").num_rows == 599


def test_an_erased_subject_does_not_come_back_with_the_next_ingest(
        local: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> None:
    """The source system may still hold them (a CRM export is read again on every ingest, and by
    every retraining): the ledger keeps them out of each new version."""
    project = churn_with_export(local, approved_usecase, 300)
    ingest(local, project)
    email = pacsv.read_csv(project / "data" / "customers.csv")["email"][0].as_py()
    stored = pseudonym(email, local.pseudonym_key)
    erase(local, "pia", "churn", "email", email)

    again = ingest(local, project)
    with session(local) as s:
        newest = read_version(s, "churn", again.version)
    assert again.row_count == newest.num_rows == 299
    assert stored not in newest["email"].to_pylist()
    assert holding(local.home / "artifacts", stored) == []


def test_an_erased_subject_does_not_come_back_with_an_ingest_after_a_key_rotation(
        local: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> None:
    """The ledger holds the token under the key of the erasure's day, which a pseudonym under a
    new key does not match: an ingest after a rotation recognizes the subject's raw value under
    each retired key the installation still holds."""
    project = churn_with_export(local, approved_usecase, 300)
    ingest(local, project)
    email = pacsv.read_csv(project / "data" / "customers.csv")["email"][0].as_py()
    erase(local, "pia", "churn", "email", email)
    rotated = load_settings(local.as_env() | {"VALUELOOP_PSEUDONYM_KEY": "the key after the rotation, kept secret",
                                              "VALUELOOP_RETIRED_PSEUDONYM_KEYS": local.pseudonym_key})

    again = ingest(rotated, project)
    with session(rotated) as s:
        newest = read_version(s, "churn", again.version)
    assert again.row_count == newest.num_rows == 299
    assert pseudonym(email, rotated.pseudonym_key) not in newest["email"].to_pylist()


def test_an_erasure_from_the_data_of_a_serving_model_starts_a_retraining(settings: Settings, in_production: Path) -> None:
    """With ``erasure`` among the retraining triggers, the scheduler's next turn retrains a use
    case whose champion learned from an erased subject's rows; once, not on every turn."""
    from operate.support import set_operate

    from valueloop.operate.retrain import list_requests
    from valueloop.operate.scheduler import monitor_usecase

    email = pacsv.read_csv(in_production / "data" / "customers.csv")["email"][0].as_py()
    report = erase(settings, "pia", "churn", "email", email)
    assert report.erasure.models_to_retrain == [1]
    assert "retraining" not in monitor_usecase(settings, "churn").detail  # not a trigger of this policy

    set_operate(settings, {"retrain": {"triggers": ["manual", "erasure"]}})
    turn = monitor_usecase(settings, "churn")
    assert "(erasure)" in turn.detail, turn.detail
    with session(settings) as s:
        [request] = list_requests(s, "oscar", "churn")
    assert request.trigger == "erasure" and request.challenger_version == "2"
    assert request.dataset_version == report.dataset_version + 1  # ingested again, without the subject
    assert "retraining" not in monitor_usecase(settings, "churn").detail  # done: v2 is newer than the erasure


def test_an_erasure_after_a_key_rotation_finds_the_rows_pseudonymized_under_the_retired_key(
        local: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> None:
    """After a rotation the kept versions and the prediction log still hold the pseudonyms of the
    earlier key, which the new key's pseudonym does not match: the erasure searches under every
    key the installation holds, and refuses, erasing nothing, while a kept version's key is not
    among them, instead of reporting done with the subject still stored."""
    project = churn_with_export(local, approved_usecase, 300)
    ingest(local, project)  # version 0, under the first key
    email = pacsv.read_csv(project / "data" / "customers.csv")["email"][0].as_py()
    first = pseudonym(email, local.pseudonym_key)
    PredictionLog(local, "churn").append(pa.table({
        "request_id": ["subject", "other"], "model_version": ["1", "1"], "prediction": [1, 0],
        "email": [first, "someone else"], "tenure_months": [3, 4]}), source="batch")
    rotated_env = local.as_env() | {"VALUELOOP_PSEUDONYM_KEY": "the key after the rotation, kept secret"}
    rotated = load_settings(rotated_env)
    ingest(rotated, project)  # version 1 overwrites every row under the new key
    second = pseudonym(email, rotated.pseudonym_key)
    assert holding(local.home, first) and holding(local.home, second)

    with pytest.raises(InvalidInput, match=rf"retired_pseudonym_keys: dataset version 0 of 'churn' was "
                                           rf"pseudonymized under key id {key_id(local.pseudonym_key)}"):
        erase(rotated, "pia", "churn", "email", email)
    assert holding(local.home, first) and holding(local.home, second)  # the refusal erased nothing

    keyring = load_settings(rotated_env | {"VALUELOOP_RETIRED_PSEUDONYM_KEYS": local.pseudonym_key})
    assert keyring.describe()["retired_pseudonym_keys"].value == f"*** (key ids {key_id(local.pseudonym_key)})"
    report = erase(keyring, "pia", "churn", "email", email)
    assert (report.dataset_rows, report.dataset_versions_removed, report.predictions) == (1, [0, 1], 1)
    assert holding(local.home, first, second, email) == []
    with session(local) as s:
        assert read_version(s, "churn").num_rows == 299


def test_an_erasure_deletes_the_subject_s_events_from_the_use_case_s_streams(
        local: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> None:
    """Producers put raw records on the input stream (a pseudonymized column by its raw value); a
    refused one is kept among the dead letters with its document, and the prediction made for an
    event names it: each is a store of the subject. The home's private server keeps them on disk,
    in its append-only file, which a deleted entry stays in until the file is rewritten. A Redis
    of the installation's own that a consumer used is searched too, and while it is unreachable
    the erasure refuses, erasing nothing."""
    from valueloop.deploy.redis_server import free_port, home_redis_server
    from valueloop.deploy.stream import RedisUnreachable, connect, send_events, stream_names
    from valueloop.outcomes import audit

    project = churn_with_export(local, approved_usecase, 300)
    ingest(local, project)
    email = pacsv.read_csv(project / "data" / "customers.csv")["email"][0].as_py()
    stored = pseudonym(email, local.pseudonym_key)
    inputs, outputs, dead = stream_names("churn")
    with home_redis_server(local.home) as url:
        client = connect(url, 10)
        ids = send_events(client, "churn", [{"email": email, "tenure_months": 3},
                                            {"email": "someone@example.org", "tenure_months": 4}])
        for event, prediction in zip(ids, "10"):
            client.xadd(outputs, {"event_id": event, "prediction": prediction})
        client.xadd(dead, {"event_id": "1-1", "reason": "tenure_months: not a number",
                           "data": json.dumps({"email": email, "tenure_months": "three"})})
        client.xadd(dead, {"event_id": "1-2", "reason": "not a JSON document",  # cut short by its producer
                           "data": '{"email": "' + email + '", "tenure_mo'})
        client.xadd(dead, {"event_id": "1-3", "reason": "not a JSON document", "data": "{'email': 'someone else'"})
    assert holding(local.home / "redis", email)  # the stopped server's file holds the subject

    with session(local) as s:  # a consumer read the streams of a Redis of the installation's own
        audit.record(s, "oscar", "stream.start", "stream_consumer", "c1", usecase="churn")
    elsewhere = load_settings(local.as_env() | {"VALUELOOP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    with pytest.raises(RedisUnreachable, match="is unreachable"):
        erase(elsewhere, "pia", "churn", "email", email)
    assert holding(local.home, stored) and holding(local.home / "redis", email)  # nothing erased

    with home_redis_server(local.home) as url:
        mine = load_settings(local.as_env() | {"VALUELOOP_REDIS_URL": url})
        report = erase(mine, "pia", "churn", "email", email)
        assert report.stream_entries == 4
        client = connect(url, 10)
        assert [json.loads(f[b"data"])["email"] for _, f in client.xrange(inputs)] == ["someone@example.org"]
        assert [f[b"event_id"].decode() for _, f in client.xrange(outputs)] == [ids[1]]
        assert [f[b"event_id"] for _, f in client.xrange(dead)] == [b"1-3"]
    assert holding(local.home, email, stored) == []


def test_a_batch_scored_by_a_pseudonymized_id_keeps_only_its_pseudonym_and_the_erasure_finds_it(
        settings: Settings, in_production: Path, run_cli, tmp_path: Path) -> None:
    """A batch's rows are named by its id column in the prediction log (``<job>/<id>``), which
    feedback names them by. An id the DPIA pseudonymizes (``--id email``) is stored as its pseudonym,
    as ingest stores that column, and never as the raw value; the erasure finds those rows too.
    The output, the caller's own rows, keeps the id as the input holds it. A column the DPIA drops
    names no row anywhere."""
    import pyarrow.parquet as pq

    export = in_production / "data" / "customers.csv"
    email = pacsv.read_csv(export)["email"][0].as_py()
    stored = pseudonym(email, settings.pseudonym_key)
    refused = run_cli(settings, "batch", "churn", "--input", str(export), "--output", str(tmp_path / "named.parquet"),
                      "--id", "name", as_user="devon")
    assert refused.returncode == 2 and "--id 'name': the DPIA drops 'name'" in refused.stderr, refused.stderr
    done = run_cli(settings, "batch", "churn", "--input", str(export), "--output", str(tmp_path / "scored.parquet"),
                   "--id", "email", "--json", as_user="devon")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)["id"]
    assert pq.read_table(tmp_path / "scored.parquet")["email"][0].as_py() == email
    assert holding(settings.home, email) == []
    assert f"{job}/{stored}" in PredictionLog(settings, "churn").request_ids()

    report = erase(settings, "pia", "churn", "email", email)
    assert report.predictions == 1
    assert holding(settings.home, email, stored) == []


def test_an_erasure_reaches_the_redis_a_consumer_was_given_with_its_password_from_the_officer(
        settings: Settings, in_production: Path, run_cli) -> None:
    """A consumer may read a Redis of its own (``valueloop stream --redis-url``): its start is
    audited with that server, the password hidden. The erasure searches every such server too; one
    whose password the installation does not hold stops it before anything is erased, naming the
    server, until the privacy officer passes its URL (``--redis-url``)."""
    import redis

    from valueloop.deploy.redis_server import local_redis_server
    from valueloop.deploy.stream import StreamOptions, connect, consume, send_events, stream_names
    from valueloop.outcomes import audit

    email = pacsv.read_csv(in_production / "data" / "customers.csv")["email"][0].as_py()
    record = json.loads(json.dumps(pacsv.read_csv(in_production / "data" / "customers.csv").slice(0, 1).to_pylist()[0],
                                   default=str))
    inputs, outputs, _ = stream_names("churn")
    with local_redis_server() as bare:
        redis.Redis.from_url(bare).config_set("requirepass", "the consumer's own secret")
        url = bare.replace("redis://", "redis://:the%20consumer%27s%20own%20secret@")
        hidden = bare.replace("redis://", "redis://:***@")
        client = connect(url, 10)
        send_events(client, "churn", [{**record, "email": email}, {**record, "email": "someone@example.org"}])
        summary = consume(settings, "devon", "churn", StreamOptions(redis_url=url, idle_exit=1, consumer="own"))
        assert summary.predicted == 2 and client.xlen(outputs) == 2
        with session(settings) as s:
            [started] = audit.events(s, usecase="churn", action="stream.start", limit=1)
        assert started.after["redis"] == hidden and "secret" not in json.dumps(started.after)

        with pytest.raises(InvalidInput, match=re.escape(f"a consumer of 'churn' read {hidden}")):
            erase(settings, "pia", "churn", "email", email)
        assert client.xlen(inputs) == 2 and client.xlen(outputs) == 2  # the refusal erased nothing

        done = run_cli(settings, "privacy", "erase", "churn", "--subject", f"email={email}", "--redis-url", url,
                       "--json", as_user="pia")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["stream_entries"] == 2
        assert [json.loads(f[b"data"])["email"] for _, f in client.xrange(inputs)] == ["someone@example.org"]
        assert client.xlen(outputs) == 1

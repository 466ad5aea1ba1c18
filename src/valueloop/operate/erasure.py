"""A data subject's erasure (GDPR Art. 17), carried out in every store that keeps their rows.

The subject is named by a column and its value as the source holds it. The rows are found as
ingest stored them: a pseudonymized column holds the keyed pseudonym of the value, a kept (or
undeclared) column the value itself; a dropped column was never stored and a generalized one
names a group, not a person, so neither can name a subject.

Nothing recorded holds a personal value, nor the pseudonym stored in the data: an erasure is
recorded by its *token*, the keyed HMAC of the stored value, which matches the rows (the same
HMAC over each stored value) and reveals neither. The ledger ``<home>/privacy/erasures.jsonl``
(also in every later backup) and the audit event hold it; a restore re-applies every recorded
erasure (:func:`reapply`), since a backup taken before holds the subject.

Per store: the dataset's newest version is committed again without them (a new version,
recorded like an ingest's), then every file of any kept version that holds the subject is deleted; the versions
that read such a file are marked removed, their rows keeping the lineage, and the models trained
on them are flagged for retraining. Prediction-log and label files are rewritten without the rows
(a batch's rows also by their request id ``<job>/<id>``, when the job named them by the column),
and the use case's Redis streams without the subject's events and their predictions.
Every later ingest leaves the subject's rows out (:func:`erased`): the source may still hold them.

After a key rotation the kept versions and the log still hold pseudonyms of the earlier key: the
search runs under each key the installation holds (``retired_pseudonym_keys`` besides the
pseudonym key), and a kept version made under any other key stops the erasure before it starts.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from valueloop.config import Settings, hide_password, key_id
from valueloop.data import delta
from valueloop.data.tables import DatasetVersion
from valueloop.data.treatments import hmac_params, hmac_sql, key_ids, pseudonym, quote
from valueloop.deploy.predlog import PredictionLog
from valueloop.deploy.stream import delete_events
from valueloop.errors import InvalidInput
from valueloop.learn.tables import ModelVersion
from valueloop.operate.retention import mark_removed, rewrite_without
from valueloop.outcomes import audit
from valueloop.outcomes.privacy import require_privacy_approval
from valueloop.outcomes.roles import Action, require
from valueloop.outcomes.spec import Treatment
from valueloop.outcomes.usecases import get_usecase, viewed
from valueloop.outcomes.users import get_user
from valueloop.storage import Location
from valueloop.store import intents
from valueloop.store import session as open_session
from valueloop.store.models import UseCase, utcnow

if TYPE_CHECKING:
    import pyarrow as pa
    import redis

LEDGER = Path("privacy") / "erasures.jsonl"


class Erasure(BaseModel):
    """One recorded erasure: what finds the subject's rows, and no personal value."""

    id: str
    usecase: str
    column: str
    #: HMAC(pseudonym key, the value as stored): matches the rows, reveals neither value nor pseudonym
    token: str
    key_id: str
    #: the same token under each retired key, by key id: it matches the rows stored before a rotation
    earlier_tokens: dict[str, str] = {}
    at: datetime
    by: str
    models_to_retrain: list[int] = []


class ErasureReport(BaseModel):
    erasure: Erasure
    dataset_rows: int
    dataset_version: int | None
    dataset_versions_removed: list[int]
    dataset_files_deleted: int
    predictions: int
    labels: int
    #: entries deleted from the use case's Redis streams: events, dead letters, their predictions
    stream_entries: int = 0  # an older server's answer has none
    #: stores that hold no such column, so nothing of the subject could be found there
    not_held: list[str]


class ErasureView(Erasure):
    #: model versions flagged for retraining for which no model was registered since
    awaiting_retraining: list[int]


def ledger_path(settings: Settings) -> Path:
    return settings.home / LEDGER


def read_ledger(path: Path) -> list[Erasure]:
    if not path.is_file():
        return []
    return [Erasure.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def erased(settings: Settings, usecase: str) -> dict[str, dict[str, list[str]]]:
    """The tokens of the subjects erased from ``usecase``, by column and by the key each is
    matched under: what every later ingest keeps out, since the source may still hold them. An
    erasure recorded before a rotation is matched under the retired key; one under a key the
    installation no longer holds cannot be recognized."""
    keys = _keys(settings)
    current = key_id(settings.pseudonym_key)
    found: dict[str, dict[str, list[str]]] = {}
    for entry in read_ledger(ledger_path(settings)):
        if entry.usecase != usecase:
            continue
        tokens = {entry.key_id: entry.token, **entry.earlier_tokens}
        held = current if current in tokens else next((i for i in tokens if i in keys), None)
        if held is not None:
            found.setdefault(entry.column, {}).setdefault(keys[held], []).append(tokens[held])
    return found


def _append(settings: Settings, entry: Erasure) -> None:
    path = ledger_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(entry.model_dump_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


@dataclass
class _Found:
    #: the files holding the subject, each with their values (as text) in the column
    files: dict[Location, set[str]]
    #: whether any file has the column at all
    held: bool

    @property
    def values(self) -> set[str]:
        return set().union(*self.files.values())


def _keys(settings: Settings) -> dict[str, str]:
    """Every pseudonym key the installation holds, by key id: the current one and the retired."""
    return {key_id(key): key for key in (settings.pseudonym_key, *settings.retired_pseudonym_keys)}


def _find(files: Iterable[Location], column: str, tokens: dict[str, str],
          part: Callable[[str], str] = lambda value: value) -> _Found:
    """Where the subject is: each file's ``column`` read once, its values matched by the keyed
    HMAC of their ``part`` (SQL of the value's text; the whole by default) under each key against
    that key's token (``tokens``, by key)."""
    import duckdb
    import pyarrow.parquet as pq

    found: dict[Location, set[str]] = {}
    held = False
    params = [{"token": token, **hmac_params(key)} for key, token in tokens.items()]  # the pads, once
    con = duckdb.connect()
    try:
        value = f"CAST({quote(column)} AS VARCHAR)"
        query = f"SELECT DISTINCT {value} FROM held WHERE {hmac_sql(part(value))} = $token"
        for f in files:
            with f.filesystem.open_input_file(f.path) as handle:
                parquet = pq.ParquetFile(handle)
                if column not in parquet.schema_arrow.names:
                    continue
                held = True
                con.register("held", parquet.read(columns=[column]))
            values = {v for p in params for (v,) in con.execute(query, p).fetchall()}
            if values:
                found[f] = values
            con.unregister("held")
    finally:
        con.close()
    return _Found(files=found, held=held)


def _without(column: str, values: set[str]) -> Callable[[pa.Table], Any]:
    """A mask keeping the rows whose ``column`` is not among ``values``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def keep(table: pa.Table) -> Any:
        if column not in table.column_names or not values:
            return pa.chunked_array([pa.repeat(True, table.num_rows)])
        matched = pc.is_in(table[column].cast(pa.string()), pa.array(sorted(values), pa.string()))
        return pc.fill_null(pc.invert(matched), True)

    return keep


def _dataset(session: Session, settings: Settings, usecase: UseCase, entry: Erasure, tokens: dict[str, str],
             report: ErasureReport) -> None:
    rows = [r for r in session.scalars(select(DatasetVersion).where(DatasetVersion.usecase_id == usecase.id)
                                       .order_by(DatasetVersion.version)) if not r.removed]
    _searchable(rows, set(map(key_id, tokens)), usecase.name)
    table = delta.table_path(settings, usecase.name)
    files = {f: r for r in rows for f in delta.files_at(table, r.version) if f.exists()}
    if rows and not any(entry.column in (c["name"] for c in r.schema) for r in rows):
        report.not_held.append("datasets")
    found = _find(sorted(files, key=str), entry.column, tokens)
    values, holding = found.values, set(found.files)
    if not values:
        return
    head = rows[-1]
    if holding & set(delta.files_at(table, head.version)):
        # the newest version rewritten whole and committed as an overwrite, as ingest commits: a
        # Delta DELETE would keep its predicate, the pseudonym, in the table's log for good
        import pyarrow.parquet as pq

        kept = delta.read(str(table), head.version)  # the table's place in this home, whatever a restore left in uri
        kept = kept.filter(_without(entry.column, values)(kept))
        recorded = [r.version for r in rows]
        with delta.staging(settings) as work:
            pq.write_table(kept, work / "erased.parquet", compression="zstd")
            with intents.writing(settings, intents.DELTA_COMMIT, usecase.name, str(table), entry.by,
                                 after=max(recorded)) as intent:
                version = delta.commit(table, [work / "erased.parquet"], kept.schema, "overwrite", recorded)
        report.dataset_rows = head.row_count - kept.num_rows
        report.dataset_version = version
        session.add(DatasetVersion(
            usecase_id=usecase.id, version=version, uri=str(table), mode="erase",
            row_count=kept.num_rows, schema=head.schema,
            source_fingerprints=head.source_fingerprints, transform_hash=head.transform_hash,
            dpia_version=head.dpia_version, treatments=head.treatments, serving=head.serving,
            quality=head.quality, profile=head.profile, project_dir=head.project_dir, actor=entry.by))
        intents.finish(session, intent, version=version)
    for f in holding:
        f.delete()
    report.dataset_files_deleted = len(holding)
    mark_removed(entry.by, rows, table, "erasure", f"a data subject's rows, erasure {entry.id}")
    report.dataset_versions_removed = [r.version for r in rows if r.removed]
    entry.models_to_retrain = sorted(session.scalars(
        select(ModelVersion.version).where(ModelVersion.usecase == usecase.name,
                                           ModelVersion.dataset_version.in_(report.dataset_versions_removed))))


def _searchable(rows: list[DatasetVersion], searched: set[str], usecase: str) -> None:
    """Refuse, before anything is erased, while a kept version was pseudonymized under a key the
    search has no token for: its rows of the subject would stay, reported as erased."""
    unknown = {r.version: used for r in rows if (used := key_ids(r.treatments) - searched)}
    if unknown:
        version, used = next(iter(unknown.items()))
        more = f" (and {len(unknown) - 1} more version(s))" if len(unknown) > 1 else ""
        raise InvalidInput(
            f"retired_pseudonym_keys: dataset version {version} of '{usecase}' was pseudonymized under key id "
            f"{', '.join(sorted(used))}{more}, which is neither the pseudonym key nor a retired one, so its rows "
            "of the subject cannot be found; add that key to retired_pseudonym_keys "
            "(VALUELOOP_RETIRED_PSEUDONYM_KEYS), or remove the version; nothing was erased")


def _row_id(request_id: str) -> str:
    """The row id of a batch's request id ``<job id>/<row id>`` (SQL): the input's id column as
    the use case's stores keep it (deploy/batch.py)."""
    return f"substr({request_id}, strpos({request_id}, '/') + 1)"


def _log(settings: Settings, entry: Erasure, tokens: dict[str, str], report: ErasureReport) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    plog = PredictionLog(settings, entry.usecase)
    files = plog.files()
    found = _find(files, entry.column, tokens)
    named = _find(files, "request_id", tokens, _row_id)  # a batch's rows named by the subject's id
    if files and not found.held and not named.files:
        report.not_held.append("prediction log")
    if not found.files and not named.files:
        return
    by_value, by_name = _without(entry.column, found.values), _without("request_id", named.values)

    def keep(table: pa.Table) -> Any:
        return pc.and_(by_value(table), by_name(table))

    erased: set[str] = set()
    for f in {**found.files, **named.files}:
        table = pq.read_table(f.path, filesystem=f.filesystem)
        erased |= set(table.filter(pc.invert(keep(table)))["request_id"].to_pylist())
    report.predictions = sum(rewrite_without(day, keep) for day in plog.days())
    report.labels = rewrite_without(plog.root.child("labels"), _without("request_id", erased))


def apply(session: Session, settings: Settings, usecase: UseCase, entry: Erasure,
          redis_urls: Sequence[str] | None = None, forms: Sequence[str] = ()) -> ErasureReport:
    """Remove the rows ``entry`` matches from every store of the use case (idempotent), under
    each key the installation holds that the entry has a token for. ``redis_urls`` (with their
    passwords) reach the Redis servers consumers were given; None after a restore, which brings
    back none of their data. ``forms``, the value and its pseudonyms, known while the erasure is
    made and never recorded, find the subject in a stream document that is no JSON object."""
    keys = _keys(settings)
    if entry.key_id not in keys:
        raise InvalidInput(f"pseudonym_key: erasure {entry.id} was recorded under key id {entry.key_id}, this "
                           f"installation's keys are {', '.join(keys)}: set the key of the home it was made in "
                           "(or add it to retired_pseudonym_keys), or its rows cannot be found")
    tokens = {keys[i]: token for i, token in {entry.key_id: entry.token, **entry.earlier_tokens}.items() if i in keys}
    report = ErasureReport(erasure=entry, dataset_rows=0, dataset_version=None, dataset_versions_removed=[],
                           dataset_files_deleted=0, predictions=0, labels=0, stream_entries=0, not_held=[])
    with _redis_servers(session, settings, usecase.name, redis_urls) as servers:  # each answering, before anything is erased
        _dataset(session, settings, usecase, entry, tokens, report)
        _log(settings, entry, tokens, report)
        report.stream_entries = sum(delete_events(client, usecase.name, _holds(entry.column, tokens),
                                                  lambda data: any(f.encode() in data for f in forms))
                                    for client in servers)
    return report


def _consumers_servers(session: Session, settings: Settings, usecase: str, given: Sequence[str]) -> list[str]:
    """The URLs of the Redis servers the use case's consumers read, as their starts were audited
    (``deploy.stream.server_of``), each with the password the installation or ``given`` holds; a
    start audited before servers were recorded read the configured ``redis_url``."""
    held = {hide_password(url): url for url in (*given, settings.redis_url)}
    configured = "home" if settings.sources["redis_url"] == "default" else hide_password(settings.redis_url)
    urls = []
    for started in audit.events(session, usecase=usecase, action="stream.start"):
        server = (started.after or {}).get("redis", configured)
        if server == "home" or server in urls:
            continue
        if server not in held and ":***@" in server:
            raise InvalidInput(f"--redis-url: a consumer of '{usecase}' read {server}, whose password this "
                               "installation does not hold; pass that server's URL with --redis-url, so its "
                               "streams are searched too; nothing was erased")
        urls.append(server)
    return [held.get(server, server) for server in urls]


@contextmanager
def _redis_servers(session: Session, settings: Settings, usecase: str,
                   given: Sequence[str] | None) -> Iterator[list[redis.Redis]]:
    """The Redis servers that may hold the use case's streams: the home's private server once it
    kept data (started for the erasure if it is stopped), and each server a consumer of the use
    case read (``given`` None: the configured ``redis_url`` alone, once one ran). One that does
    not answer stops the erasure before it starts."""
    from valueloop.deploy.redis_server import home_redis_server
    from valueloop.deploy.stream import connect

    with ExitStack() as servers:
        urls = []
        if (settings.home / "redis" / "data").is_dir():
            urls.append(servers.enter_context(home_redis_server(settings.home)))
        if given is not None:
            urls += _consumers_servers(session, settings, usecase, given)
        elif settings.sources["redis_url"] != "default" and audit.events(session, usecase=usecase,
                                                                         action="stream.start", limit=1):
            urls.append(settings.redis_url)
        yield [servers.enter_context(connect(url, 3)) for url in dict.fromkeys(urls)]


def _holds(column: str, tokens: dict[str, str]) -> Callable[[dict[str, Any]], bool]:
    """Whether a stream's record holds the subject: its ``column`` as a producer sends it (the
    raw value of a pseudonymized column, which the consumer treats) or as stored."""

    def holds(record: dict[str, Any]) -> bool:
        if record.get(column) is None:
            return False
        value = str(record[column])
        for key, token in tokens.items():
            stored = pseudonym(value, key)  # the token if the value is as stored; else its stored form
            if token in (stored, pseudonym(stored, key)):
                return True
        return False

    return holds


def _counts(report: ErasureReport) -> dict[str, Any]:
    return report.model_dump(mode="json", exclude={"erasure"}) | {
        "column": report.erasure.column, "token": report.erasure.token, "key_id": report.erasure.key_id,
        "models_to_retrain": report.erasure.models_to_retrain}


def erase(settings: Settings, actor: str | None, name: str, column: str, value: str,
          redis_urls: Sequence[str] = ()) -> ErasureReport:
    """Erase the subject whose ``column`` holds ``value`` (privacy officer only), audited and
    recorded without the value; ``redis_urls`` hold the passwords of Redis servers consumers
    were given that the installation's settings do not."""
    with open_session(settings) as s:
        usecase = get_usecase(s, name)
        acting = get_user(s, actor)
        require(s, acting, Action.erase, usecase)
        rule = require_privacy_approval(s, usecase).treatments.get(column)
        treatment = rule.treatment if rule else Treatment.keep
        if treatment is Treatment.drop:
            raise InvalidInput(f"--subject {column}: the DPIA drops '{column}' at ingest, so no store holds it and "
                               "it cannot find a subject; name a pseudonymized or kept column (such as email)")
        if treatment is Treatment.generalize:
            raise InvalidInput(f"--subject {column}: the DPIA generalizes '{column}', whose values each name a "
                               "group of people, not one subject; name a pseudonymized or kept column")
        if not value:
            raise InvalidInput(f"--subject {column}=: the value is empty; name the subject's value")
        stored = {i: pseudonym(value, key) if treatment is Treatment.pseudonymize else value
                  for i, key in _keys(settings).items()}
        tokens = {i: pseudonym(stored[i], key) for i, key in _keys(settings).items()}
        current = key_id(settings.pseudonym_key)
        entry = Erasure(id=uuid.uuid4().hex[:12], usecase=name, column=column, token=tokens.pop(current),
                        key_id=current, earlier_tokens=tokens, at=utcnow(), by=acting.name)
        report = apply(s, settings, usecase, entry, redis_urls, [value, *stored.values()])
        audit.record(s, acting.name, "privacy.erase", "erasure", entry.id, usecase=name, after=_counts(report))
        _append(settings, entry)
        return report


def reapply(settings: Settings, actor: str, ledgers: Iterable[Path]) -> list[ErasureReport]:
    """After a restore: every erasure the ``ledgers`` and the restored home record, re-applied
    (idempotent) and recorded in the home's ledger, audited as ``actor``."""
    own = {e.id for e in read_ledger(ledger_path(settings))}
    entries = {e.id: e for path in [ledger_path(settings), *ledgers] for e in read_ledger(path)}
    reports = []
    for entry in sorted(entries.values(), key=lambda e: e.at):
        with open_session(settings) as s:  # one transaction each: a Delta commit records its intent apart
            usecase = s.scalar(select(UseCase).where(UseCase.name == entry.usecase))
            if usecase is None:  # the backup predates the use case: none of its data is there
                continue
            report = apply(s, settings, usecase, entry)
            audit.record(s, actor, "privacy.erase.reapply", "erasure", entry.id, usecase=entry.usecase,
                         after=_counts(report))
            reports.append(report)
    for entry in sorted(entries.values(), key=lambda e: e.at):
        if entry.id not in own:
            _append(settings, entry)
    return reports


def views(session: Session, settings: Settings, name: str) -> list[ErasureView]:
    """The use case's ledger entries, each with its models still awaiting retraining: those for
    which no model was registered since."""
    newest = session.scalar(select(ModelVersion.created_at).where(ModelVersion.usecase == name)
                            .order_by(ModelVersion.created_at.desc()).limit(1))
    return [ErasureView(**e.model_dump(), awaiting_retraining=[] if newest and newest > e.at else e.models_to_retrain)
            for e in read_ledger(ledger_path(settings)) if e.usecase == name]


def erasures(settings: Settings, actor: str | None, name: str) -> list[ErasureView]:
    """The use case's recorded erasures, with the models still awaiting their retraining."""
    with open_session(settings) as s:
        viewed(s, actor, name)
        return views(s, settings, name)


def retraining_due(settings: Settings, name: str) -> bool:
    """Whether an erasure calls for retraining: a model trained on the erased rows still serves
    (champion or challenger), nothing was registered since, and no retraining it triggered has
    started since."""
    from valueloop.operate.tables import RetrainRequest

    with open_session(settings) as s:
        entries = [e for e in views(s, settings, name) if e.models_to_retrain]
        if not entries:
            return False
        started = s.scalar(select(RetrainRequest.id).where(
            RetrainRequest.usecase == name, RetrainRequest.trigger == "erasure",
            RetrainRequest.created_at >= max(e.at for e in entries)))
        serving = {r.version for r in s.scalars(select(ModelVersion).where(ModelVersion.usecase == name))
                   if {"champion", "challenger"} & set(r.aliases)}
    flagged = {v for e in entries for v in e.awaiting_retraining}
    return started is None and bool(flagged & serving)


def subject_of(text: str) -> tuple[str, str]:
    """``COLUMN=VALUE`` as typed on the command line."""
    column, sep, value = text.partition("=")
    if not sep or not column.strip():
        raise InvalidInput(f"--subject: expected COLUMN=VALUE (such as email=jane@example.com), got {text!r}")
    return column.strip(), value

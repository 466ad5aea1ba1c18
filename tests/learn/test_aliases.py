"""The database holds the aliases; MLflow's follow: a promotion commits with its audit event and
is then applied to MLflow, MLflow failing in between is repaired by reconcile (as ``valueloop
server`` starts), and a promotion whose transaction fails never reaches MLflow."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from deploy_support import server_started, train_version
from sqlalchemy.exc import IntegrityError

from valueloop.config import Settings
from valueloop.learn import registry
from valueloop.learn.aliases import AliasChange, reconcile
from valueloop.operate.tables import KpiValue
from valueloop.outcomes import audit
from valueloop.store import session


def _mlflow_aliases(settings: Settings) -> dict[str, int]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    return {a: int(v) for a, v in client.get_registered_model("churn").aliases.items()}


def _db_aliases(settings: Settings) -> dict[str, int]:
    with session(settings) as s:
        return {a: m.version for m in registry.list_models(s, "olivia", "churn") for a in m.aliases}


def _alias_writes(settings: Settings, refused: bool) -> None:
    """Make MLflow's store refuse (or accept again) every write of an alias, as a full disk or a
    read-only replica would: triggers in its own database, whoever the test runs as."""
    with sqlite3.connect(settings.mlflow_uri.removeprefix("sqlite:///")) as store:
        for statement in ("INSERT", "UPDATE", "DELETE"):
            store.execute(f"CREATE TRIGGER refuse_{statement.lower()} BEFORE {statement} ON registered_model_aliases "
                          "BEGIN SELECT RAISE(ABORT, 'the MLflow store is unwritable'); END" if refused
                          else f"DROP TRIGGER refuse_{statement.lower()}")


@pytest.fixture
def two_versions(settings: Settings, churn) -> tuple[int, int]:
    """v1 the champion, v2 accepted and not promoted."""
    return train_version(settings, "champion", "logistic"), train_version(settings, None, "logistic")


def test_mlflow_failing_after_the_commit_is_repaired_by_reconcile(settings: Settings, two_versions) -> None:
    first, second = two_versions
    _alias_writes(settings, refused=True)
    with session(settings) as s:  # the promotion is valueloop's, whole, though MLflow refuses
        assert registry.promote(s, settings, "dana", "churn", second, "champion").aliases == ["champion"]
    assert _db_aliases(settings) == {"champion": second}
    with session(settings) as s:
        assert audit.events(s, usecase="churn")[-1].after == {"alias": "champion", "holder": second}
    assert _mlflow_aliases(settings) == {"champion": first}  # behind, never ahead

    _alias_writes(settings, refused=False)
    assert reconcile(settings, ["churn"]) == [AliasChange(usecase="churn", alias="champion", version=second,
                                                          was=first)]
    assert _mlflow_aliases(settings) == {"champion": second}
    assert reconcile(settings) == []


def test_the_server_reconciles_as_it_starts(settings: Settings, two_versions, tmp_path: Path) -> None:
    first, second = two_versions
    _alias_writes(settings, refused=True)
    with session(settings) as s:
        registry.promote(s, settings, "dana", "churn", second, "challenger")
    _alias_writes(settings, refused=False)
    assert _mlflow_aliases(settings) == {"champion": first}
    server_started(settings, tmp_path / "server.log")
    assert _mlflow_aliases(settings) == {"champion": first, "challenger": second}
    assert f"MLflow alias challenger of churn: v{second} (was none)" in (tmp_path / "server.log").read_text()


def test_a_promotion_whose_transaction_fails_leaves_mlflow_untouched(settings: Settings, two_versions) -> None:
    first, second = two_versions
    with pytest.raises(IntegrityError), session(settings) as s:
        registry.promote(s, settings, "dana", "churn", second, "challenger")
        s.add(KpiValue(usecase="no-such-usecase", metric="churn_rate", value=0.1, reported_by="olivia"))
        s.flush()  # the same transaction fails: a KPI of no use case
    assert _db_aliases(settings) == _mlflow_aliases(settings) == {"champion": first}
    with session(settings) as s:  # and the same promotion, committed, reaches MLflow
        registry.promote(s, settings, "dana", "churn", second, "challenger")
    assert _db_aliases(settings) == _mlflow_aliases(settings) == {"champion": first, "challenger": second}

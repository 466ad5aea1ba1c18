"""The registry: owner acceptance, promotion gates, aliases in MLflow, digest checks, reproduce."""

from __future__ import annotations

from pathlib import Path

import pytest

from valueloop.config import Settings
from valueloop.errors import Conflict, GateClosed, InvalidInput, PermissionDenied
from valueloop.learn import registry, training
from valueloop.learn.tables import ModelVersion
from valueloop.store import session


@pytest.fixture
def registered(settings: Settings, churn) -> tuple[str, int]:
    name, _ = churn
    with session(settings) as s:
        report = training.train(s, settings, "dana", name)
    assert report.registered is not None
    return name, report.registered.version


def _promote(settings: Settings, name: str, version: int, alias: str = "champion", actor: str = "dana"):  # type: ignore[no-untyped-def]
    with session(settings) as s:
        return registry.promote(s, settings, actor, name, version, alias)


def _accept(settings: Settings, name: str, version: int, accepted: bool = True, actor: str = "olivia"):  # type: ignore[no-untyped-def]
    with session(settings) as s:
        return registry.accept(s, actor, name, version, accepted=accepted, comment="meets the goal")


def test_champion_needs_acceptance_and_gets_the_mlflow_alias(settings: Settings, registered) -> None:
    from mlflow import MlflowClient

    name, version = registered
    with pytest.raises(GateClosed, match=r"cannot become champion: the owner has not accepted it "
                                         r"\(acceptance: pending"):
        _promote(settings, name, version)
    challenger = _promote(settings, name, version, "challenger")  # tests passed is enough
    assert challenger.aliases == ["challenger"]

    with pytest.raises(PermissionDenied, match="requires role owner"):
        _accept(settings, name, version, actor="dana")
    with pytest.raises(InvalidInput, match="comment"), session(settings) as s:
        registry.accept(s, "olivia", name, version, accepted=True, comment="  ")
    accepted = _accept(settings, name, version)
    assert (accepted.acceptance, accepted.accepted_by) == ("accepted", "olivia")
    assert any(k.name == "auc" and k.value is not None for k in accepted.kpis)
    assert any(k.kind == "business" and k.value is None for k in accepted.kpis)

    champion = _promote(settings, name, version)
    assert champion.aliases == ["champion"]  # the challenger alias moved off with the promotion
    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    assert int(client.get_model_version_by_alias(name, "champion").version) == version
    assert {a: int(v) for a, v in client.get_registered_model(name).aliases.items()} == {"champion": version}
    with session(settings) as s:
        model = registry.load_model(s, settings, name, "champion")
    assert model.metadata.run_id == champion.run_id


def test_champion_needs_passed_tests_and_says_which_gates_are_closed(settings: Settings, registered) -> None:
    name, version = registered
    with session(settings) as s:
        s.query(ModelVersion).filter_by(usecase=name, version=version).one().tests_passed = False
    with pytest.raises(GateClosed, match=r"its model tests did not pass; the owner has not accepted it"):
        _promote(settings, name, version)
    _accept(settings, name, version)
    with pytest.raises(GateClosed, match=r"cannot become challenger: its model tests did not pass$"):
        _promote(settings, name, version, "challenger")


def test_a_rejected_model_is_not_promoted_and_aliases_are_only_champion_or_challenger(
    settings: Settings, registered
) -> None:
    name, version = registered
    _accept(settings, name, version, accepted=False)
    with pytest.raises(GateClosed, match=r"acceptance: rejected"):
        _promote(settings, name, version)
    with pytest.raises(InvalidInput, match="alias: 'production' is not one of champion, challenger"):
        _promote(settings, name, version, "production")
    with pytest.raises(PermissionDenied, match="may not promote"):
        _promote(settings, name, version, "challenger", actor="olivia")


def test_a_changed_artifact_is_refused(settings: Settings, registered) -> None:
    import mlflow.artifacts

    name, version = registered
    with session(settings) as s:
        view = registry.get_model(s, "dana", name, version)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=view.artifact_uri,
                                                     tracking_uri=settings.mlflow_uri))
    assert registry.artifact_digest(local) == view.artifact_digest
    with (local / "model.pkl").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(Conflict, match=f"model {name} v{version}: artifact digest .* does not match"), \
            session(settings) as s:
        registry.load_model(s, settings, name, version)


def test_reproduce_matches_the_original_metrics(settings: Settings, registered) -> None:
    name, version = registered
    with session(settings) as s:
        run_id = registry.get_model(s, "dana", name, version).run_id
        report = training.reproduce(s, settings, "dana", run_id)
    assert report.matches and report.differences == {}
    assert report.new_run != run_id
    with session(settings) as s:
        runs = {r.run_id: r for r in training.list_runs(s, "dana", name)}
    assert runs[report.new_run].reproduces == run_id
    assert runs[report.new_run].params == runs[run_id].params


def test_lineage_acceptance_and_promotion_on_postgresql(pg_settings: Settings, make_churn) -> None:
    name, _ = make_churn(pg_settings)
    with session(pg_settings) as s:
        report = training.train(s, pg_settings, "dana", name)
    assert report.registered is not None
    version = report.registered.version
    _accept(pg_settings, name, version)
    promoted = _promote(pg_settings, name, version)
    with session(pg_settings) as s:
        listed = registry.list_models(s, "oscar", name)
        runs = training.list_runs(s, "oscar", name)
        model = registry.load_model(s, pg_settings, name, "champion")
    assert [(m.version, m.aliases, m.acceptance) for m in listed] == [(version, ["champion"], "accepted")]
    assert promoted.run_id in {r.run_id for r in runs}
    assert {r.dataset_version for r in runs} == {report.dataset_version}
    assert model.metadata.run_id == promoted.run_id

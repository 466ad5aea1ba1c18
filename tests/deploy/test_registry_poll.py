"""The serving pool's poll reads the registry with statements built once and bound at each call
(issue 19): every answer must still follow the registry, whatever changed since the last one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deploy_support import set_deploy

from valueloop.config import Settings
from valueloop.deploy.pool import Wanted, registry_state
from valueloop.outcomes.privacy import transparency_notices
from valueloop.outcomes.spec import Deploy


def _set_aliases(settings: Settings, held: dict[int, list[str]]) -> None:
    """churn's versions (registered here when new) hold exactly these aliases."""
    from sqlalchemy import select

    from valueloop.learn.tables import ModelVersion
    from valueloop.store import session

    with session(settings) as s:
        rows = {row.version: row for row in s.scalars(select(ModelVersion).where(ModelVersion.usecase == "churn"))}
        for version, aliases in held.items():
            if version not in rows:
                rows[version] = ModelVersion(
                    usecase="churn", registered_name="churn", version=version, run_id=f"run-{version}",
                    dataset_version=1, dpia_version=1, artifact_uri=f"file:///nowhere/{version}",
                    artifact_digest="0" * 64, test_report={}, tests_passed=True)
                s.add(rows[version])
            rows[version].aliases = aliases


def test_each_poll_follows_every_kind_of_registry_change(
        db_settings: Settings, approved_usecase: Callable[[Settings], tuple[str, Path]]) -> None:
    approved_usecase(db_settings)
    from valueloop.outcomes.usecases import get_usecase
    from valueloop.store import session

    with session(db_settings) as s:
        notice = get_usecase(s, "churn").spec["privacy"]["ai"]["transparency_notice"]
    assert registry_state(db_settings) == {}  # no version holds an alias: no use case is named
    steps: list[tuple[Callable[[], None], Wanted | None]] = [
        (lambda: _set_aliases(db_settings, {1: ["champion"], 2: []}), Wanted("1", None, Deploy(), notice)),
        (lambda: _set_aliases(db_settings, {2: ["challenger"]}), Wanted("1", "2", Deploy(), notice)),
        (lambda: set_deploy(db_settings, canary=0.25), Wanted("1", "2", Deploy(canary=0.25), notice)),
        (lambda: _set_aliases(db_settings, {1: ["challenger"], 2: ["champion"]}),
         Wanted("2", "1", Deploy(canary=0.25), notice)),
        (lambda: set_deploy(db_settings), Wanted("2", "1", Deploy(), notice)),
        (lambda: _set_aliases(db_settings, {1: []}), Wanted("2", None, Deploy(), notice)),
        (lambda: _set_aliases(db_settings, {2: []}), None),
    ]
    for change, wanted in steps:
        change()
        assert registry_state(db_settings) == ({} if wanted is None else {"churn": wanted})

    from valueloop.store import get_engine

    with get_engine(db_settings.database_url, db_settings.migration_database_url).connect() as c:
        for names, found in ((["churn", "nosuch"], {"churn": notice}), ([], {}), (["nosuch"], {}),
                             (["churn"], {"churn": notice})):
            assert transparency_notices(c, names) == found

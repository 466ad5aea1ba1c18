"""The models a server answers with, kept in step with the registry without a restart.

Every ``poll_seconds`` the pool reads which versions hold the champion and challenger aliases
(and each use case's ``deploy:`` section). A changed version is loaded, verified by digest and
warmed in a background thread while the old one keeps answering; then one assignment swaps the
use case's :class:`Deployment`. Requests already queued on the old version finish on it, after
which its batcher stops. A version that fails to load is reported and not retried; the previous
one keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from valueloop.config import Settings
from valueloop.deploy.batching import MicroBatcher
from valueloop.deploy.metrics import MODEL_LOAD, SWAPS
from valueloop.deploy.model import ServedModel
from valueloop.outcomes.spec import Deploy

if TYPE_CHECKING:
    from sqlalchemy import Select

log = logging.getLogger("valueloop.deploy.pool")


@dataclass(frozen=True)
class Wanted:
    champion: str
    challenger: str | None
    policy: Deploy
    #: the AI Act's transparency notice of a limited-risk use case, sent with every prediction
    notice: str | None = None


@dataclass
class Deployment:
    usecase: str
    policy: Deploy
    champion: MicroBatcher
    challenger: MicroBatcher | None = None
    notice: str | None = None

    def by_version(self, version: str) -> MicroBatcher | None:
        for batcher in (self.champion, self.challenger):
            if batcher is not None and batcher.model.version == version:
                return batcher
        return None

    @property
    def versions(self) -> list[str]:
        return [b.model.version for b in (self.champion, self.challenger) if b is not None]


@functools.cache
def _registry_queries() -> tuple[Select[Any], Select[Any]]:
    """The versions' aliases, and the specs of the use cases named (bound at each call), built
    once: with the transparency notices' statement, building them anew at every poll was two
    thirds of its CPU (0.82 -> 0.28 ms a poll, median of 500; issue 19)."""
    from sqlalchemy import bindparam, select

    from valueloop.learn.tables import ModelVersion
    from valueloop.store.models import UseCase

    return (select(ModelVersion.usecase, ModelVersion.version, ModelVersion.aliases),
            select(UseCase.name, UseCase.spec).where(UseCase.name.in_(bindparam("names", expanding=True))))


def registry_state(settings: Settings) -> dict[str, Wanted]:
    """Champion and challenger versions per use case, from the Learn phase's registry table.

    Read on one plain connection, not an ORM session: the server asks every second, from a
    thread beside the requests, and a session's setup and commit were a third of each poll's
    interpreter time (0.91 -> 0.56 ms CPU a poll; issue 19)."""
    from valueloop.outcomes.privacy import transparency_notices
    from valueloop.store import get_engine

    versions, specs_of = _registry_queries()
    with get_engine(settings.database_url, settings.migration_database_url).connect() as s:
        aliases: dict[str, dict[str, str]] = {}
        for usecase, version, held in s.execute(versions).all():
            for alias in held or ():
                aliases.setdefault(usecase, {})[alias] = str(version)
        specs = dict(s.execute(specs_of, {"names": list(aliases)}).all())
        notices = transparency_notices(s, list(aliases))
    wanted = {}
    for usecase, held in aliases.items():
        if "champion" in held and usecase in specs:
            policy = Deploy.model_validate(specs[usecase].get("deploy") or {})
            wanted[usecase] = Wanted(held["champion"], held.get("challenger"), policy, notices.get(usecase))
    return wanted


Loader = Callable[[Settings, str, str], ServedModel]
State = Callable[[Settings], dict[str, Wanted]]


@dataclass
class ModelPool:
    settings: Settings
    loader: Loader
    poll_seconds: float = 1.0
    #: what should be served; the registry, or a fixed answer in a bundle
    state: State = registry_state
    deployments: dict[str, Deployment] = field(default_factory=dict)
    #: (use case, version) -> why it could not be loaded
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    ready: bool = False
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load what the registry names now (readiness waits for it), then keep polling."""
        await self.sync()
        self.ready = True
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for deployment in list(self.deployments.values()):
            for batcher in (deployment.champion, deployment.challenger):
                if batcher is not None:
                    await batcher.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.sync()
            except Exception:  # noqa: BLE001 - a database hiccup must not end polling
                log.exception("polling the registry failed; serving what is loaded")

    async def _batcher(self, usecase: str, version: str, policy: Deploy,
                       current: MicroBatcher | None) -> MicroBatcher | None:
        """The batcher for ``version``: the current one when it matches (policy unchanged),
        a freshly loaded one otherwise, or None when loading failed."""
        if current is not None and current.model.version == version and \
                (current.max_batch_size, current.max_wait * 1000) == (policy.max_batch_size, policy.max_wait_ms):
            return current
        if current is not None and current.model.version == version:
            model = current.model
        else:
            if (usecase, version) in self.failures:
                return None
            try:
                model = await asyncio.to_thread(self.loader, self.settings, usecase, version)
            except Exception as exc:  # noqa: BLE001 - reported, the old version keeps serving
                self.failures[(usecase, version)] = str(exc)
                log.error("use case %s: version %s not loaded: %s", usecase, version, exc)
                return None
            MODEL_LOAD.labels(usecase).observe(model.load_seconds)
        batcher = MicroBatcher(model, max_batch_size=policy.max_batch_size, max_wait_ms=policy.max_wait_ms)
        batcher.start()
        return batcher

    async def sync(self) -> None:
        wanted = await asyncio.to_thread(self.state, self.settings)
        for usecase, want in wanted.items():
            current = self.deployments.get(usecase)
            champion = await self._batcher(usecase, want.champion, want.policy,
                                           current.champion if current else None)
            if champion is None:
                if current is None:
                    continue
                champion = current.champion
            challenger = None
            if want.challenger:
                old = current.challenger if current else None
                challenger = await self._batcher(usecase, want.challenger, want.policy, old)
            self._swap(usecase, Deployment(usecase, want.policy, champion, challenger, want.notice), current)
        for usecase in set(self.deployments) - set(wanted):
            self._swap(usecase, None, self.deployments[usecase])

    def _swap(self, usecase: str, new: Deployment | None, old: Deployment | None) -> None:
        if new is not None and old is not None and (new.policy, new.champion, new.challenger, new.notice) == \
                (old.policy, old.champion, old.challenger, old.notice):
            return
        deployments = dict(self.deployments)
        if new is None:
            deployments.pop(usecase, None)
        else:
            deployments[usecase] = new
        self.deployments = deployments  # one assignment: a request sees the old or the new, whole
        keep = {id(b) for b in (new.champion, new.challenger) if b is not None} if new else set()
        for batcher in (old.champion, old.challenger) if old else ():
            if batcher is not None and id(batcher) not in keep:
                asyncio.get_running_loop().create_task(batcher.close())
        if new is not None and (old is None or new.champion is not old.champion):
            SWAPS.labels(usecase, "champion").inc()
            log.info("use case %s: champion is now version %s", usecase, new.champion.model.version)
        if new is not None and new.challenger is not None and (old is None or new.challenger is not old.challenger):
            SWAPS.labels(usecase, "challenger").inc()

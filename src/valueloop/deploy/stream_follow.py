"""A stream consumer follows its alias as REST servers do (deploy/pool.py): when a promotion or a
rollback moves champion (or challenger) to another version, that version is loaded, verified by
digest and warmed in a thread while the current one keeps scoring, then swapped in between two
batches. A version that fails to load is reported once and not retried; the current one goes on.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

from valueloop.config import Settings
from valueloop.deploy.model import ServedModel, load
from valueloop.deploy.pool import registry_state

log = logging.getLogger("valueloop.deploy.stream")

ALIASES = ("champion", "challenger")


class Follower:
    """The model a consumer scores with, kept in step with the registry every ``poll_seconds``."""

    def __init__(self, settings: Settings, model: ServedModel, ref: str, poll_seconds: float) -> None:
        self.settings, self.model, self.poll_seconds = settings, model, poll_seconds
        self.alias = ref if ref in ALIASES else None  # a version number never moves
        self.failures: dict[str, str] = {}
        self._next = time.monotonic() + poll_seconds
        self._loading: tuple[str, Future[ServedModel]] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"stream-load-{model.usecase}")

    def current(self) -> ServedModel:
        """The model for the next batch: a version that finished loading replaces the old one here."""
        if self._loading is not None and self._loading[1].done():
            (version, future), self._loading = self._loading, None
            try:
                self.model = future.result()
                log.info("use case %s: the stream now scores with version %s (%s)", self.model.usecase,
                         version, self.alias)
            except Exception as exc:  # noqa: BLE001 - reported; the current version keeps scoring
                self.failures[version] = str(exc)
                log.error("use case %s: version %s not loaded: %s", self.model.usecase, version, exc)
        if self.alias is not None and self._loading is None and time.monotonic() >= self._next:
            self._next = time.monotonic() + self.poll_seconds
            try:
                wanted = registry_state(self.settings).get(self.model.usecase)
            except Exception:  # noqa: BLE001 - a database hiccup must not stop the stream
                log.exception("reading the registry failed; scoring with version %s", self.model.version)
                return self.model
            version = wanted and (wanted.champion if self.alias == "champion" else wanted.challenger)
            if version and version != self.model.version and version not in self.failures:
                self._loading = (version, self._executor.submit(load, self.settings, self.model.usecase, version))
        return self.model

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

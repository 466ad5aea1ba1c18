"""Retention vacuums the dataset versions superseded longer ago than the DPIA's shortest retention,
keeping those a registered model was trained on until the privacy officer decides otherwise; a
removed version refuses to be read, naming why (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data.data_support import update

from valueloop.config import Settings
from valueloop.data import ingest, read_version
from valueloop.demo.outcomes import POSTCODE_TO_REGION
from valueloop.errors import ValueloopError
from valueloop.learn import training
from valueloop.operate.retention import enforce
from valueloop.outcomes import privacy
from valueloop.store import session


def test_retention_vacuums_superseded_versions_but_those_models_were_trained_on(
        settings: Settings, churn: tuple[str, Path]) -> None:
    name, project = churn  # version 0, 1,500 rows
    with session(settings) as s:
        trained_on = training.train(s, settings, "dana", name, candidates=["logistic"]).registered.dataset_version
    update(settings, lambda d: [c.update(retention="1s") for c in d["privacy"]["columns"]
                                if c["treatment"] != "drop"])
    with session(settings) as s:  # the officer decides the shorter retention, on the same condition
        privacy.approve(s, "pia", name, [POSTCODE_TO_REGION])

    def overwrite() -> int:
        with session(settings) as s:
            return ingest(s, settings, "dave", name, project_dir=project, mode="overwrite").version

    superseded, newest = overwrite(), overwrite()
    report = enforce(settings, "oscar", name)
    assert trained_on == 0 and report.dataset_versions_kept_for_models == [trained_on]
    assert report.dataset_files_deleted > 0 and report.dataset_versions_removed == [superseded]
    with session(settings) as s:
        assert read_version(s, name, trained_on).num_rows == read_version(s, name, newest).num_rows == 1500
        with pytest.raises(ValueloopError, match="removed by retention"):
            read_version(s, name, superseded)

    decided = enforce(settings, "pia", name, models_too=True)  # the officer's decision
    assert decided.dataset_versions_removed == [trained_on]  # removed in this run
    with session(settings) as s:
        assert read_version(s, name, newest).num_rows == 1500

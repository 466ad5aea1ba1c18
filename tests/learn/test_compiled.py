"""Compiled tree ensembles: ``model: compile: true`` compiles a registered LightGBM model's trees
to a native library beside it, which the loader of REST, batch and stream verifies and uses, and
a bundle carries; a model that cannot be compiled is registered with a note and served by Python."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import cloudpickle
import numpy as np
import pyarrow.csv as pacsv
import pytest
from learn_support import FAST, set_model, untimed

from valueloop.config import Settings
from valueloop.deploy import bundle
from valueloop.deploy.model import from_pyfunc, load, load_ref
from valueloop.errors import Conflict, InvalidInput
from valueloop.examples import load_generator
from valueloop.learn import registry, training
from valueloop.learn.compiled import CompiledEstimator
from valueloop.learn.versions import version_row
from valueloop.outcomes import audit
from valueloop.store import session

TREES = [FAST[1]]  # LightGBM, 40 trees


def _train(settings: Settings, name: str, candidates: list[dict]) -> int:
    # the directional test is the model's own business, not the compiler's: 40 trees may miss it
    tests = {k: v for k, v in untimed(settings, name).items() if k != "directional"}
    set_model(settings, name, candidates=candidates, compile=True, tests=tests)
    with session(settings) as s:
        report = training.train(s, settings, "dana", name)
    assert report.registered is not None, report.results
    return report.registered.version


def test_compiled_trees_answer_as_the_model_a_changed_library_is_refused_one_that_cannot_load_falls_back(
        settings: Settings, churn, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    name, _ = churn
    version = _train(settings, name, TREES)
    with session(settings) as s:
        shown = registry.get_model(s, "dana", name, version)
        served = load_ref(s, settings, "oscar", name, str(version))
        python = from_pyfunc(settings, name, str(version), registry.load_model(s, settings, name, version))
    assert shown.compiled is not None and shown.compiled.note is None, shown.compiled
    assert shown.compiled.library.endswith("/compiled/model.so") and len(shown.compiled.digest) == 64
    assert isinstance(served.estimator, CompiledEstimator)
    assert not isinstance(python.estimator, CompiledEstimator)

    # 10,000 raw records, through the recorded pipeline, as batch and stream score them
    load_generator("churn").write(tmp_path / "rows", 10_000, 11)
    table = pacsv.read_csv(next((tmp_path / "rows").glob("*.csv")))
    features = served.features(table)
    compiled, reference = served.predict_table(features), python.predict_table(features)
    assert len(compiled.probabilities) == 10_000
    np.testing.assert_allclose(compiled.proba, reference.proba, rtol=0, atol=1e-6)
    assert (compiled.labels == reference.labels).all()
    # shipped to a Dask worker (cloudpickle, as Dask does): the library travels with the model
    shipped = cloudpickle.loads(cloudpickle.dumps(served))
    assert isinstance(shipped.estimator, CompiledEstimator)
    np.testing.assert_array_equal(shipped.predict_table(features).proba, compiled.proba)
    # and one request, as REST answers it
    row = {c: [features.column(c)[0].as_py()] for c in served.validator.names}
    assert served.predict(row).probabilities == pytest.approx(python.predict(row).probabilities, abs=1e-6)

    # a bundle of the champion carries the library, verified, and serves from it on its own
    with session(settings) as s:
        registry.accept(s, "olivia", name, version, accepted=True, comment="meets the goal")
        registry.promote(s, settings, "dana", name, version)
        bundle.build(s, settings, "devon", name, tmp_path / "bundle")
    assert json.loads((tmp_path / "bundle" / "bundle.json").read_text())["compiled"] == shown.compiled.digest
    assert any(r.startswith("tl2cgen==") for r in (tmp_path / "bundle" / "requirements.txt").read_text().split())
    bundled = bundle.load_bundle(tmp_path / "bundle", bundle.Manifest.read(tmp_path / "bundle"))
    assert isinstance(bundled.estimator, CompiledEstimator)
    np.testing.assert_array_equal(bundled.predict_table(features).proba, compiled.proba)
    shipped_library = tmp_path / "bundle" / "compiled" / "model.so"
    shipped_library.write_bytes(shipped_library.read_bytes() + b"\0")
    with pytest.raises(Conflict, match=r"compiled/model.so changed since the bundle was built; not serving"):
        bundle.load_bundle(tmp_path / "bundle", bundle.Manifest.read(tmp_path / "bundle"))

    library = Path(shown.compiled.library.removeprefix("file://"))
    library.write_bytes(library.read_bytes() + b"\0")
    with pytest.raises(Conflict, match=r"compiled library digest .* does not match the registered .* changed since "
                                       r"registration and is not loaded"):
        load(settings, name, str(version))

    # an intact library that cannot load on this machine (here: not a shared library at all,
    # its digest recorded as such): the Python model serves, and the log says why
    library.write_bytes(b"not a shared library")
    with session(settings) as s:
        row = version_row(s, name, version)
        row.compiled = row.compiled | {"digest": hashlib.sha256(b"not a shared library").hexdigest()}
    with caplog.at_level(logging.WARNING, logger="valueloop.learn.compiled"):
        fallback = load(settings, name, str(version))
    assert not isinstance(fallback.estimator, CompiledEstimator)
    assert f"model {name} v{version}: compiled library not loaded" in caplog.text
    np.testing.assert_array_equal(fallback.predict_table(features).proba, reference.proba)


def test_an_uncompilable_model_is_registered_with_a_note_and_served_by_python(settings: Settings, churn,
                                                                             run_cli) -> None:
    name, _ = churn
    version = _train(settings, name, [{"name": "logistic", "kind": "logistic", "baseline": True}])
    with session(settings) as s:
        shown = registry.get_model(s, "dana", name, version)
        served = load_ref(s, settings, "oscar", name, str(version))
        events = [e for e in audit.events(s, usecase=name) if e.action == "model.register"]
    assert shown.compiled is not None and shown.compiled.library is None
    assert "LogisticRegression is not a tree ensemble valueloop compiles" in shown.compiled.note
    assert events[-1].after["compiled"] == {"note": shown.compiled.note}
    assert not isinstance(served.estimator, CompiledEstimator)
    assert served.predict(served.example()).probabilities is not None
    shown_cli = run_cli(settings, "models", name, str(version), as_user="dana")
    assert shown_cli.returncode == 0, shown_cli.stderr
    assert "not compiled: LogisticRegression is not a tree ensemble" in " ".join(shown_cli.stdout.split())


def test_compile_must_be_true_or_false() -> None:
    import yaml

    from valueloop.outcomes.spec import parse_spec

    data = yaml.safe_load((Path(__file__).parents[2] / "examples/churn/valueloop.yaml").read_text())
    assert parse_spec(data | {"model": data["model"] | {"compile": True}}).model.compile is True
    with pytest.raises(InvalidInput, match=r'model\.compile: expected true or false, got "sometimes"'):
        parse_spec(data | {"model": data["model"] | {"compile": "sometimes"}})


def test_a_compiled_library_runs_from_a_private_copy_and_leaves_nothing_in_a_shared_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library was copied to /tmp/valueloop-compiled/<digest>/model.so, then checked and
    loaded: another local user who made that folder first could swap the file between the check
    and the load, and run code in the server. Each load now has a folder of its own (0700, an
    unpredictable name), gone once the library is loaded."""
    import tempfile

    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier

    from valueloop.learn.compiled import compile_model

    x = np.random.default_rng(0).normal(size=(200, 4))
    estimator = GradientBoostingClassifier(n_estimators=5, max_depth=2).fit(x, (x[:, 0] > 0).astype(int))
    library, note = compile_model(estimator, x[:20], tmp_path)
    assert library is not None, note
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    compiled = CompiledEstimator(estimator, library.read_bytes())
    assert np.allclose(compiled.predict_proba(x), estimator.predict_proba(x), atol=1e-6)
    assert list(shared.iterdir()) == []

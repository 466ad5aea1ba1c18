"""Where the bundled examples are: beside the package in a wheel, at the repository root in a checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from valueloop.errors import NotFound

_PACKAGED = Path(__file__).parent / "_examples"
_CHECKOUT = Path(__file__).resolve().parents[2] / "examples"


def example_dir(name: str) -> Path:
    root = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT
    path = root / name
    if not path.is_dir():
        raise NotFound(f"example '{name}' is not bundled (looked in {root})")
    return path


def load_generator(name: str) -> ModuleType:
    """The example's data generator module (its ``generate.py``)."""
    path = example_dir(name) / "generate.py"
    spec = importlib.util.spec_from_file_location(f"valueloop_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

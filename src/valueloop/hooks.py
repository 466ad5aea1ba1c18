"""Python hooks that a use case file names (``data.python``, custom candidates): code execution.

A use case file can be written by anyone its roles allow, over HTTP too, and importing a module
runs it. So a hook resolves only from the modules that the setting ``hook_modules`` lists,
which is the configuration of the process that runs the hook (the server's own, in server
mode), never the file's. Nothing is allowed by default. An entry allows a module and its
submodules; ``@project`` allows the modules of the use case's project folder, loaded afresh
from their files (an edited file must not be served from the import cache).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from valueloop.errors import InvalidInput
from valueloop.project import inside

#: the entry of ``hook_modules`` that allows the project folder's own modules
PROJECT = "@project"
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _listed(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == entry or module.startswith(entry + ".") for entry in allowed if entry != PROJECT)


def _refused(field: str, module: str, allowed: tuple[str, ...], project: Path | None) -> InvalidInput:
    hint = f"; {PROJECT} allows the modules of the project folder {project}" if project else ""
    return InvalidInput(
        f"{field}: module {module} is not allowed: a hook runs as valueloop's own code, so it must "
        f"come from a module the setting hook_modules (VALUELOOP_HOOK_MODULES) lists; it lists "
        f"{', '.join(allowed) or 'none'}{hint}"
    )


def _from_project(module: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"valueloop_hook_{module}", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def _module(module: str, field: str, allowed: tuple[str, ...], project: Path | None) -> ModuleType:
    if project is not None and PROJECT in allowed:
        path = project / (module.replace(".", "/") + ".py")
        if path.is_file():
            return _from_project(module, inside(project, path, field))
    if not _listed(module, allowed):
        raise _refused(field, module, allowed, project)
    return importlib.import_module(module)


def resolve(dotted: str, field: str, allowed: tuple[str, ...],
            project: Path | None = None) -> tuple[Callable[..., Any], Path | None]:
    """The function ``module:function`` names and its module's file, if the module is allowed;
    ``project`` is the folder ``@project`` stands for (None where there is none)."""
    module_name, _, function_name = dotted.partition(":")
    if not _DOTTED.fullmatch(module_name) or not function_name.isidentifier():
        raise InvalidInput(f"{field}: {dotted!r} is not module:function (a dotted module name, a function name)")
    try:
        module = _module(module_name, field, allowed, project)
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - any import failure means the same to the user
        raise InvalidInput(f"{field}: cannot load {module_name}: {type(exc).__name__}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InvalidInput(f"{field}: module {module_name} has no function {function_name!r}")
    return function, Path(module.__file__) if getattr(module, "__file__", None) else None

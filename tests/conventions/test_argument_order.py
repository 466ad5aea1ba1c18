"""Every phase's public functions take what they share in one order, ``(session, settings, actor,
…)``: a caller never has to look up which comes first. Read from the source, so a new function
that breaks the order fails here before anyone calls it."""

from __future__ import annotations

import ast
from pathlib import Path

import valueloop

PHASES = ("outcomes", "data", "learn", "deploy", "operate")
#: the shared parameters, in their order (positional; ``audit.events(actor=…)`` is a filter)
SHARED = ("session", "settings", "actor")


def _out_of_order() -> list[str]:
    root = Path(valueloop.__file__).parent
    found = []
    for phase in PHASES:
        for path in sorted((root / phase).glob("*.py")):
            for node in ast.parse(path.read_text()).body:
                if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                    continue
                names = [a.arg for a in [*node.args.posonlyargs, *node.args.args]]  # a keyword is a filter
                shared = [n for n in names if n in SHARED]
                if names[:len(shared)] != sorted(shared, key=SHARED.index):
                    found.append(f"{phase}/{path.name}:{node.lineno} {node.name}({', '.join(names)})")
    return found


def test_phase_functions_take_session_settings_actor_first_in_that_order() -> None:
    assert _out_of_order() == []

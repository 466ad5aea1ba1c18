"""Turn pydantic's errors into ``path: what was expected, got what`` lines, one per problem.

Used by the YAML loader, the CLI and the HTTP API alike, so a problem reads the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

_EXPECTED = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
}


def location(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(document)"


def _shown(value: Any) -> str:
    try:
        return json.dumps(value, default=str)[:80]
    except (TypeError, ValueError):
        return repr(value)[:80]


def describe_errors(
    exc: ValidationError | Sequence[Mapping[str, Any]], prefix: Sequence[int | str] = ()
) -> list[str]:
    """One line per problem; takes a ValidationError or its ``errors()`` (as FastAPI hands them)."""
    problems = []
    for err in exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc:
        # drop the tag pydantic adds for discriminated unions, e.g. ('sources', 0, 'csv', 'path')
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        path = location([*prefix, *loc])
        kind = err["type"]
        if kind in ("missing", "extra_forbidden"):
            problems.append(f"{path}: {_EXPECTED[kind]}")
        else:
            message = _EXPECTED.get(kind, err["msg"].removeprefix("Value error, "))
            if kind == "string_pattern_mismatch":
                message = f"must match the pattern {err['ctx']['pattern']}"
            value = err.get("input")
            # a rule over a whole mapping (a model validator) names its own fields
            got = "" if isinstance(value, dict | list) else f", got {_shown(value)}"
            problems.append(f"{path}: {message}{got}")
    return problems

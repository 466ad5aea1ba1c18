"""The value a use case intends and realizes: its ``value:`` expression, evaluated safely.

The expression is arithmetic over business KPI names and named constants, evaluated by
simpleeval (never ``eval``) with nothing but numbers, + - * / ** and parentheses: a function
call, an attribute, a subscript, a comparison or a string is refused by name, and so is a
power that would take the evaluator minutes or overflow.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from simpleeval import InvalidExpression, SimpleEval

if TYPE_CHECKING:
    from valueloop.outcomes.spec import UseCaseSpec

#: the expression is one line of a few KPIs and constants; longer is a mistake or an attack
MAX_EXPRESSION_CHARS = 500
#: ``x ** 64`` covers compounding over years of months; more is refused before it is computed
MAX_EXPONENT = 64

_FORBIDDEN = {
    ast.Call: "a function call", ast.Attribute: "attribute access", ast.Subscript: "a subscript",
    ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "a conditional",
}


class ValueRefused(ValueError):
    """The expression, or its evaluation with the given names, is not a finite number."""


def _power(base: float, exponent: float) -> float:
    if abs(exponent) > MAX_EXPONENT:
        raise ValueRefused(f"** with exponent {exponent:g} is beyond the limit of {MAX_EXPONENT}")
    return float(base) ** float(exponent)


def _refuse(construct: str) -> Callable[[ast.AST], Any]:
    def handler(node: ast.AST) -> Any:
        raise ValueRefused(f"{construct} ({ast.unparse(node)}) is not allowed; use numbers, KPI names, "
                           "constants, + - * / ** and parentheses")
    return handler


def _number(node: ast.Constant) -> float:
    if isinstance(node.value, bool) or not isinstance(node.value, int | float):
        raise ValueRefused(f"{node.value!r} is not a number; only numbers, KPI names and constants are allowed")
    return float(node.value)


def evaluate(expression: str, names: Mapping[str, float]) -> float:
    """The expression's value with ``names``; raise ValueRefused saying what is wrong."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueRefused(f"{len(expression)} characters, more than the limit of {MAX_EXPRESSION_CHARS}")
    evaluator = SimpleEval(
        operators={ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                   ast.Div: operator.truediv, ast.Pow: _power, ast.USub: operator.neg, ast.UAdd: operator.pos},
        functions={}, names={k: float(v) for k, v in names.items()})
    evaluator.nodes.update({node: _refuse(construct) for node, construct in _FORBIDDEN.items()})
    evaluator.nodes[ast.Constant] = _number
    try:
        tree = ast.parse(expression.strip(), mode="eval")  # one expression: no statement, no assignment
        result = evaluator.eval(expression, previously_parsed=tree.body)
    except SyntaxError as exc:
        raise ValueRefused(f"not an expression ({exc.msg})") from None
    except InvalidExpression as exc:  # an unknown name, operator or construct
        known = ", ".join(sorted(names)) or "none"
        name = getattr(exc, "name", None)
        detail = f"unknown name '{name}'; known: {known}" if name else str(exc)
        raise ValueRefused(detail) from None
    except ZeroDivisionError:
        raise ValueRefused("division by zero") from None
    except OverflowError:
        raise ValueRefused("the result is too large to be a number") from None
    except TypeError as exc:  # e.g. "a" * 1.5
        raise ValueRefused(f"not arithmetic on numbers ({exc})") from None
    if isinstance(result, bool) or not isinstance(result, int | float) or not math.isfinite(result):
        raise ValueRefused(f"gives {result!r}, not a finite number")
    return float(result)


class CycleValue(BaseModel):
    """One cycle's figures: ``intended`` has every KPI at its target, ``realized`` at the cycle's
    recorded value (None while a KPI of the expression has none, or when it cannot be computed)."""

    cycle: int
    currency: str
    intended: float
    realized: float | None
    cost: float
    net: float | None
    missing: list[str]
    problem: str | None = None

    def line(self) -> str:
        realized = f"{self.realized:,.2f}" if self.realized is not None else \
            (self.problem or f"not yet (no value of {', '.join(self.missing)})")
        net = f"{self.net:,.2f}" if self.net is not None else "-"
        return (f"cycle {self.cycle} value in {self.currency}: intended {self.intended:,.2f}, realized {realized}, "
                f"cost {self.cost:,.2f}, net {net}")


class ValueView(BaseModel):
    usecase: str
    expression: str
    constants: dict[str, float]
    currency: str
    cost: float
    cycles: list[CycleValue]


def _names_in(expression: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(expression.strip(), mode="eval")) if isinstance(node, ast.Name)}


def intended(spec: UseCaseSpec) -> float:
    """The value with every business KPI at its target; refused (ValueRefused) naming the problem,
    so that a file whose expression cannot be evaluated is refused at upload."""
    assert spec.value is not None
    targets = {k.name: k.target for k in spec.kpis if k.kind == "business"}
    if clash := sorted(set(targets) & set(spec.value.constants)):
        raise ValueRefused(f"constant(s) {', '.join(clash)} shadow business KPI(s) of the same name")
    return evaluate(spec.value.expression, {**targets, **spec.value.constants})


def cycle_value(spec: UseCaseSpec, number: int, outcomes: Mapping[str, Mapping[str, Any]]) -> CycleValue | None:
    """The figures of cycle ``number`` from its recorded KPI outcomes, or None without a value section."""
    if spec.value is None:
        return None
    business = {k.name for k in spec.kpis if k.kind == "business"}
    recorded = {k: float(o["value"]) for k, o in outcomes.items() if k in business}
    missing = sorted((_names_in(spec.value.expression) & business) - set(recorded))
    realized, problem = None, None
    if not missing:
        try:
            realized = evaluate(spec.value.expression, {**recorded, **spec.value.constants})
        except ValueRefused as exc:  # e.g. a recorded 0 that the expression divides by
            problem = f"cannot be computed: {exc}"
    return CycleValue(cycle=number, currency=spec.value.currency, intended=intended(spec), realized=realized,
                      cost=spec.value.cost, net=None if realized is None else realized - spec.value.cost,
                      missing=missing, problem=problem)

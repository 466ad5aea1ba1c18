"""What the foundation's tests share (``from outcomes.support import ...`` in tests/outcomes,
tests/cli and tests/server): the churn team, the example use case file as data, and a snapshot
of every table that proves a refused action wrote nothing."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from sqlalchemy import select

from valueloop.config import Settings
from valueloop.demo.outcomes import PEOPLE
from valueloop.examples import example_dir
from valueloop.outcomes import privacy, usecases, users
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.spec import UseCaseSpec, parse_spec
from valueloop.store import get_engine, session
from valueloop.store.models import Base

# every phase's tables, so that db_state sees every table whichever test files were collected
import valueloop.data.tables  # noqa: E402,F401
import valueloop.deploy.batch_tables  # noqa: E402,F401
import valueloop.learn.tables  # noqa: E402,F401
import valueloop.operate.tables  # noqa: E402,F401
import valueloop.store.intents  # noqa: E402,F401

PHONE = {
    "column": "phone", "category": "contact", "purpose": "retention calls", "legal_basis": "contract",
    "retention": "730d", "treatment": "pseudonymize",
}


def churn_data() -> dict[str, Any]:
    """The bundled example file as plain data, a fresh copy each call, ready to be changed."""
    return copy.deepcopy(yaml.safe_load((example_dir("churn") / "valueloop.yaml").read_text()))


def churn_spec(**changes: Any) -> UseCaseSpec:
    return parse_spec({**churn_data(), **changes})


def with_phone() -> UseCaseSpec:
    """The churn file after the team declared one more personal column."""
    data = churn_data()
    data["privacy"]["columns"].append(PHONE)
    return parse_spec(data)


def add_people(settings: Settings) -> None:
    """The demo's people; ``admin`` comes first and so becomes the administrator, who appoints
    pia privacy officer."""
    with session(settings) as s:
        for name in PEOPLE:
            users.add_user(s, "admin", users.NewUser(name=name, email=f"{name}@example.com",
                                                     is_privacy_officer=name == "pia"))


def formulated(settings: Settings, *, submitted: bool = False) -> str:
    """The churn use case, formulated (and its DPIA submitted, when asked); returns its name."""
    add_people(settings)
    with session(settings) as s:
        usecases.create_usecase(s, "olivia", churn_spec())
        usecases.advance(s, "ana", "churn", State.formulated)
        if submitted:
            privacy.submit(s, "olivia", "churn")
    return "churn"


def update_as_team(settings: Settings, data: dict[str, Any]) -> None:
    """Upload a changed use case file as the team does, each field by its role: oscar
    (operations) the retraining triggers and schedule, olivia (owner and formulator) the rest."""
    new = copy.deepcopy(data)
    with session(settings) as s:
        old = usecases.spec_of(usecases.get_usecase(s, new["name"])).model_dump(mode="json")
    kept = ((old.get("operate") or {}).get("retrain")) or {"triggers": ["manual"], "schedule": None}
    first = copy.deepcopy(new)
    if first.get("operate"):
        first["operate"]["retrain"] = {**first["operate"].get("retrain", {}),
                                       "triggers": kept["triggers"], "schedule": kept["schedule"]}
    with session(settings) as s:
        usecases.update_usecase(s, "olivia", parse_spec(first))
    with session(settings) as s:
        usecases.update_usecase(s, "oscar", parse_spec(new))


def db_state(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with get_engine(settings.database_url).connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
            for t in Base.metadata.sorted_tables
        }

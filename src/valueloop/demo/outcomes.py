"""Demo chapter 1, Outcomes: people and roles, formulation, the DPIA and its decision, the audit trail."""

from __future__ import annotations

import shutil

from valueloop.config import mark_demo
from valueloop.demo import DemoContext
from valueloop.errors import GateClosed, PermissionDenied
from valueloop.examples import example_dir
from valueloop.outcomes import audit, privacy, usecases, users
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.spec import ColumnTreatment, load_spec, parse_spec
from valueloop.store import session

#: the privacy officer's condition on the churn DPIA: postcodes cut to their region
POSTCODE_TO_REGION = ColumnTreatment(column="postcode", treatment="generalize", params={"prefix": 2})

PEOPLE = {
    "admin": "administers valueloop",
    "olivia": "owner, head of customer service",
    "sam": "executive sponsor",
    "ana": "business analyst",
    "eve": "domain expert",
    "dave": "data engineer",
    "dana": "data scientist",
    "devon": "software developer",
    "pia": "privacy officer",
    "oscar": "operations",
}


def run(ctx: DemoContext) -> None:
    out, settings = ctx.console, ctx.settings
    ctx.chapter("Outcomes: formulate the use case and pass the privacy gate")

    mark_demo(settings.home)  # its data is synthetic: the development key may pseudonymize it
    project = ctx.workspace / "churn"
    shutil.copytree(example_dir("churn"), project, ignore=shutil.ignore_patterns("data", "__pycache__"))
    ctx.state["project"] = project
    spec_path = project / "valueloop.yaml"

    with session(settings) as s:
        for name, who in PEOPLE.items():
            users.add_user(s, "admin", users.NewUser(name=name, email=f"{name}@example.com"))
        users.appoint(s, "admin", "pia", privacy_officer=True)
    out.print(f"users: {', '.join(f'{n} ({w})' for n, w in PEOPLE.items())}")
    out.print("admin appointed pia privacy officer: she decides the DPIA of every use case on which "
              "she holds no other role; the use case's own file cannot name its officer")

    spec = load_spec(spec_path)
    with session(settings) as s:
        usecases.create_usecase(s, "olivia", spec)
        usecases.advance(s, "ana", "churn", State.formulated)
    out.print(f"olivia formulated [bold]{spec.title}[/bold] with {len(spec.kpis)} KPI targets: "
              + "; ".join(f"{k.name}: {k}" for k in spec.kpis))

    with session(settings) as s:
        assessment = privacy.submit(s, "olivia", "churn")
    out.print(f"olivia submitted DPIA v{assessment.version} covering "
              f"{', '.join(c.column for c in assessment.content.columns)}")

    try:
        with session(settings) as s:
            privacy.approve(s, "dana", "churn")
    except PermissionDenied as refused:
        out.print(f"[yellow]refused:[/yellow] {refused}")

    with session(settings) as s:
        approved = privacy.approve(s, "pia", "churn", [POSTCODE_TO_REGION],
                                   "approved on condition that postcodes are cut to their region")
        usecases.advance(s, "olivia", "churn", State.in_development)
    out.print(f"pia approved DPIA v{approved.version} with a condition: postcode → generalize(prefix=2)")
    if (ai := approved.content.ai) is not None:
        out.print(f"AI Act: pia decided the use case is {ai.risk} risk; serving tells people "
                  f"\"{ai.transparency_notice}\"")
    out.print("treatments the Data phase must apply: "
              + ", ".join(f"{t.column}={t.treatment.value}" for t in approved.treatments.values()))

    # The team now wants the phone number too: a changed privacy section needs a new decision.
    changed = spec.model_dump(mode="json")
    changed["privacy"]["columns"].append({
        "column": "phone", "category": "contact", "purpose": "retention calls",
        "legal_basis": "contract", "retention": "730d", "treatment": "pseudonymize",
    })
    with session(settings) as s:
        usecases.update_usecase(s, "ana", parse_spec(changed))
    try:
        with session(settings) as s:
            privacy.require_privacy_approval(s, "churn")
    except GateClosed as closed:
        out.print(f"[yellow]gate closed:[/yellow] {closed}")
    # They settle on the approved scope instead: the file goes back, and pia confirms it as v3.
    with session(settings) as s:
        usecases.update_usecase(s, "ana", spec)
        privacy.approve(s, "pia", "churn", [POSTCODE_TO_REGION], "back to the approved scope")
        gate = privacy.require_privacy_approval(s, "churn")
    out.print(f"gate open again: DPIA v{gate.version} approved")
    ctx.state["dpia_version"] = gate.version

    with session(settings) as s:
        trail = audit.events(s, usecase="churn")
    out.print(f"audit trail of churn ({len(trail)} events):")
    for event in trail:
        after = event.after or {}
        detail = after.get("state") or after.get("status") or ""
        out.print(f"  {event.at:%H:%M:%S}  {event.actor:<7} {event.action:<17} {event.object_id:<10} {detail}")

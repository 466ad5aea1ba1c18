"""Demo chapter, Operate: a month later the customers have changed. The champion's predictions
on the new month go to the prediction log, the labels follow, the monitor finds the drift and
raises an alert, and the retraining policy closes the loop on its own: a new cycle, a new
dataset version, a challenger compared with the champion on the same labeled traffic, and the
promotion, with the audit trail of that cycle."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from valueloop.demo import DemoContext
from valueloop.errors import Conflict, PermissionDenied
from valueloop.examples import load_generator
from valueloop.outcomes import audit, usecases
from valueloop.outcomes.lifecycle import State
from valueloop.outcomes.spec import parse_spec
from valueloop.store import session

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: the monitoring and retraining policy the team adds to valueloop.yaml (see its operate section)
POLICY = {
    "window": {"rows": 1000},
    "drift": {"dataset_share": 0.3},
    "alerts": [{"name": "data_drift", "metric": "dataset_drift_share", "comparator": ">=", "threshold": 0.3,
                "routes": ["log"]}],
    "retrain": {"triggers": ["drift", "performance", "manual"], "auto_promote": True, "margin": 0.005,
                "min_labels": 200, "candidates": ["logistic"]},
}


def serve_month(ctx: DemoContext, rows: int, seed: int, period: int) -> list[str]:
    """Score a month of customers, their raw CRM records, with the champion into the prediction
    log (the version's pipeline treats them as at ingest); returns the request ids, and keeps the
    true outcomes for the feedback."""
    import pyarrow as pa

    from valueloop.deploy.predlog import PredictionLog
    from valueloop.deploy.model import load_ref

    raw = load_generator("churn").generate(rows, seed, period)
    with session(ctx.settings) as s:
        model = load_ref(s, ctx.settings, "oscar", "churn", "champion")
    inputs = model.features(raw.drop_columns(["churned"]))
    result = model.predict_table(inputs)
    ids = [uuid.uuid4().hex for _ in range(rows)]
    records = inputs.append_column("request_id", pa.array(ids)).append_column(
        "model_version", pa.array([model.version] * rows)).append_column(
        "prediction", pa.array(result.labels)).append_column("probability", pa.array(result.probabilities))
    PredictionLog(ctx.settings, "churn").append(records, source="batch")
    ctx.state.setdefault("outcomes", {}).update(zip(ids, raw["churned"].to_pylist()))
    return ids


def run(ctx: DemoContext) -> None:
    import pyarrow.csv as pacsv

    from valueloop.deploy.labels import record_feedback
    from valueloop.operate.kpis import record_kpi
    from valueloop.operate.monitor import run_monitor
    from valueloop.operate.report import render
    from valueloop.operate.retrain import retrain

    out, settings = ctx.console, ctx.settings
    ctx.chapter("Operate: monitor the drift, alert, retrain and promote a better challenger")
    with session(settings) as s:
        usecase = usecases.get_usecase(s, "churn")
        if not _has_champion(s):
            raise Conflict("the Operate chapter needs a champion of 'churn' (the Learn chapter promotes one)")
        spec = usecases.spec_of(usecase).model_dump(mode="json", by_alias=True)
        if usecase.state == State.in_development:
            usecases.advance(s, "devon", "churn", State.in_production, "champion served by valueloop serve")
            out.print("devon put churn in production: the champion answers the CRM's requests")
    # each field of the policy is changed by the role it belongs to (valueloop/outcomes/duties.py)
    monitoring = POLICY | {"retrain": {k: v for k, v in POLICY["retrain"].items() if k != "triggers"}}
    try:
        with session(settings) as s:
            usecases.update_usecase(s, "ana", parse_spec(spec | {"operate": POLICY}))
    except PermissionDenied as refused:
        out.print(f"[yellow]refused:[/yellow] {refused}")
    with session(settings) as s:
        usecases.update_usecase(s, "olivia", parse_spec(spec | {"operate": monitoring}))
    with session(settings) as s:
        usecases.update_usecase(s, "oscar", parse_spec(spec | {"operate": POLICY}))
    out.print("olivia added the operate section: windows of 1000 predictions, an alert when 30 % of the "
              "features drift, automatic promotion by a margin of 0.005 AUC; oscar (operations) made "
              "drift and performance trigger the retraining")

    ids = serve_month(ctx, 2000, 11, period=1)
    out.print(f"a month later: the champion scored {len(ids)} customers of the new month into the prediction log")
    feedback = record_feedback(settings, "devon", "churn", [(i, ctx.state["outcomes"][i]) for i in ids])
    out.print(f"devon's CRM integration reported {feedback.recorded} outcomes (churned or not) by request id")
    with session(settings) as s:  # the business figures of the month, as the owner's systems report them
        for kpi, value in (("churn_rate", 0.092), ("retention_calls", 3.6)):
            record_kpi(s, "olivia", "churn", kpi, value)
    out.print("olivia recorded the month's business KPIs: churn_rate 0.092, retention_calls 3.6")
    project = ctx.state["project"]
    (project / "data").mkdir(exist_ok=True)
    pacsv.write_csv(load_generator("churn").generate(3000, 12, 1), project / "data" / "customers.csv")
    out.print("the new month's CRM export replaced data/customers.csv")

    report = run_monitor(settings, "oscar", "churn")
    newest = report.windows[-1]
    out.print(f"monitor: {len(report.windows)} window(s); newest: {len(newest.drifted)} of {len(newest.drift)} "
              f"features drifted ({newest.drift_share:.0%}): dataset drift {'yes' if newest.dataset_drift else 'no'}")
    for column, d in newest.drift.items():
        out.print(f"  {column:<16} {d.method:<14} {d.score:8.4f}  threshold {d.threshold:g}  "
                  + ("[red]drift[/red]" if d.drifted else "ok"))
    out.print(f"  champion on the labeled window: roc_auc {newest.performance.get('roc_auc', float('nan')):.3f}")
    for alert in report.alerts:
        out.print(f"[red]alert {alert.id}[/red]: {alert.message} → "
                  + ", ".join(f"{r}: {'delivered' if d.delivered else 'failed'}" for r, d in alert.deliveries.items()))
    (ctx.workspace / "monitor.html").write_text(render(report, []))
    out.print(f"HTML report: {ctx.workspace / 'monitor.html'}")

    if report.retrain is None:
        raise Conflict("the monitor did not call for retraining; the demo data should have drifted")
    out.print(f"the policy retrains on [bold]{report.retrain}[/bold]:")
    result = retrain(settings, "oscar", "churn", report.retrain)
    for step in result.steps:
        shown = {k: v for k, v in step.detail.items() if k in ("state", "cycle", "dataset_version", "rows",
                                                               "registered", "gain", "wins", "alias")}
        out.print(f"  {step.step:<10} as {step.performed_as or '-':<14} {shown}")
    if result.comparison and "champion" in result.comparison:
        metric = result.comparison["metric"]
        out.print(f"  on the same {result.comparison['labeled_rows']} labeled predictions: champion v"
                  f"{result.champion_version} {metric} {result.comparison['champion'][metric]:.4f}, challenger v"
                  f"{result.challenger_version} {result.comparison['challenger'][metric]:.4f}")
    colour = "green" if result.status == "promoted" else "yellow"
    out.print(f"[{colour}]{result.status}[/{colour}]: {result.decision}")
    out.print("a running `valueloop serve` picks the new champion up by itself (hot swap)")
    with session(settings) as s:
        for figures in usecases.show_value(s, "olivia", "churn").cycles:  # `valueloop usecase value churn`
            out.print(figures.line())

    with session(settings) as s:
        trail = [e for e in audit.events(s, usecase="churn") if e.at >= result.created_at]
    out.print(f"audit trail of cycle {result.cycle} ({len(trail)} events):")
    for event in trail:
        after = event.after or {}
        detail = after.get("step") or after.get("state") or after.get("alias") or after.get("status") or ""
        out.print(f"  {event.at:%H:%M:%S}  {event.actor:<14} {event.action:<16} {event.object_id:<12} {detail}")

    chain = audit.export_head(settings)  # what `valueloop server` does every minute
    if not chain.ok:
        raise Conflict(f"the audit chain is broken at event #{chain.first_broken}: {chain.problem}")
    out.print(f"audit chain verified: {chain.events} event(s) hash-chained, head #{chain.head.position} "
              f"{chain.head.hash[:16]}… exported to {audit.heads_file(settings)} (`valueloop audit verify`)")


def _has_champion(s: Session) -> bool:
    from sqlalchemy import select

    from valueloop.learn.tables import ModelVersion

    return any("champion" in m.aliases
               for m in s.scalars(select(ModelVersion).where(ModelVersion.usecase == "churn")))

"""Demo chapter 3, Learn: ana asks for the winner's trees compiled to native code, dana trains
the candidates on the pinned dataset version, the comparison, the tested winner registered (and
compiled, or noted why not); promotion before the owner's acceptance is refused;
olivia accepts it against the business targets and dana promotes it to champion."""

from __future__ import annotations

from rich.progress import Progress

from valueloop.demo import DemoContext
from valueloop.errors import GateClosed
from valueloop.learn import modelcard, registry, training
from valueloop.outcomes.usecases import get_usecase, spec_of, update_usecase
from valueloop.store import session


def run(ctx: DemoContext) -> None:
    out, settings = ctx.console, ctx.settings
    ctx.chapter("Learn: train candidates, test them, accept and promote the winner")

    with session(settings) as s:  # serving, batch and stream then use the compiled trees
        spec = spec_of(get_usecase(s, "churn"))
        update_usecase(s, "ana", spec.model_copy(update={"model": spec.model.model_copy(update={"compile": True})}))
    with Progress(console=out, transient=True) as progress, session(settings) as s:
        report = training.train(s, settings, "dana", "churn", dataset_version=ctx.state["dataset_version"],
                                progress=progress)
    out.print(f"dana trained {len(report.results)} candidates on churn@{report.dataset_version} "
              f"(DPIA v{report.dpia_version}; split {report.split['kind']}, seed {report.split['seed']}, "
              f"{report.split['train_rows']} training / {report.split['test_rows']} test rows), "
              f"each tracked in MLflow experiment {report.experiment_id}:")
    for r in report.results:
        failed = [t.name for t in r.tests if not t.passed]
        verdict = r.error or ("all tests passed" if r.tests_passed else "failed " + ", ".join(failed))
        searched = f", {r.trials} Optuna trials" if r.trials else ""
        best = "  ← best" if r.candidate == report.best else ""
        out.print(f"  {r.candidate:<9} {r.kind:<14} {report.primary_metric} "
                  f"{r.primary if r.primary is not None else float('nan'):.4f}  {verdict}{searched}{best}")
    out.print(f"comparison plot: {report.comparison_plot}")
    registered = report.registered
    if registered is None:
        raise RuntimeError("no candidate passed its tests, so the demo cannot go on")
    out.print(f"registered [bold]{registered.registered_name} v{registered.version}[/bold] "
              f"(digest {registered.artifact_digest[:12]}…) → run {registered.run_id[:8]}… → "
              f"churn@{registered.dataset_version} → DPIA v{registered.dpia_version}")
    compiled = registered.compiled
    if compiled is not None:
        out.print(f"model: compile: true → compiled with {compiled.compiler} (library digest {compiled.digest[:12]}…), "
                  "which serving, batch and stream load" if compiled.digest else f"not compiled: {compiled.note}")

    try:
        with session(settings) as s:
            registry.promote(s, settings, "dana", "churn", registered.version)
    except GateClosed as refused:
        out.print(f"[yellow]refused:[/yellow] {refused}")

    out.print("olivia compares the evaluation with the use case's targets:")
    for k in registered.kpis:
        shown = "measured in production" if k.value is None else f"{k.value:.3f} ({'met' if k.met else 'missed'})"
        out.print(f"  {k.name:<16} {k.kind:<8} target {k.target:<38} model: {shown}")
    with session(settings) as s:
        registry.accept(s, "olivia", "churn", registered.version, accepted=True,
                        comment="ranks the churners well enough for the retention team to call")
        champion = registry.promote(s, settings, "dana", "churn", registered.version)
    out.print(f"olivia accepted v{champion.version}; dana promoted it: aliases {', '.join(champion.aliases)}")
    ctx.state["model_version"] = champion.version

    limitations = ("Scored on subscribers with at least one month of tenure; new customers and business "
                   "accounts are outside the training data.\nThe score ranks, it does not decide: a person "
                   "calls, and a customer may refuse.")
    with session(settings) as s:
        modelcard.generate(s, settings, "dana", "churn", champion.version, limitations)
        card = modelcard.sign(s, settings, "olivia", "churn", champion.version)
    path = ctx.workspace / f"churn-v{champion.version}-model-card.html"
    path.write_text(card.html)
    out.print(f"dana wrote the model's limitations; the model card (digest {card.digest[:12]}…) is kept with "
              f"v{champion.version} in MLflow, signed by {card.signed_by}: {path}; in the console at "
              f"/usecases/churn/models/{champion.version}/card")

"""``valueloop modelcard``: a model version's technical documentation, and the owner's sign-off."""

from __future__ import annotations

from pathlib import Path

import typer

from valueloop.cli._common import JsonOption, show
from valueloop.cli.remote import Route, answer, segment, served
from valueloop.errors import InvalidInput


@served
def modelcard(
    ctx: typer.Context,
    usecase: str,
    version: int,
    as_html: bool = typer.Option(False, "--html", help="HTML instead of Markdown."),
    as_md: bool = typer.Option(False, "--md", help="Markdown (the default)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the card here instead of printing it."),
    limitations: Path = typer.Option(None, "--limitations", exists=True, dir_okay=False,
                                     help="A text file of the model's limitations and known failure "
                                          "cases (the data scientist's); the card states it."),
    sign: bool = typer.Option(False, "--sign", help="The owner signs the card as it stands now."),
    as_json: bool = JsonOption,
) -> None:
    """Generate a model version's card from its lineage and keep it with the version in MLflow."""
    from valueloop.learn.modelcard import ModelCardView

    if as_html and as_md:
        raise InvalidInput("--html, --md: choose one format")
    if sign and limitations is not None:
        raise InvalidInput("--sign, --limitations: the data scientist writes the limitations, the owner "
                           "signs the card; run them as two commands")
    text = limitations.read_text() if limitations is not None else None

    def local(who: str | None) -> ModelCardView:
        from valueloop.config import load_settings
        from valueloop.learn import modelcard as cards
        from valueloop.store import session

        settings = load_settings()
        with session(settings) as s:
            if sign:
                return cards.sign(s, settings, who, usecase, version)
            return cards.generate(s, settings, who, usecase, version, text)

    path = f"/api/usecases/{segment(usecase)}/models/{version}/card"
    route = Route("POST", f"{path}/signoff") if sign else Route("POST", path, json={"limitations": text})
    view = answer(ctx, route, ModelCardView, local)

    def render() -> None:
        document = view.html if as_html else view.markdown
        if output is not None:
            output.write_text(document)
        else:
            typer.echo(document)
        state = f"signed by {view.signed_by}" if view.signed else "not signed by the owner"
        typer.echo(f"model card of {usecase} v{version}, digest {view.digest[:12]}…: {state}"
                   + (f"; written to {output}" if output is not None else ""), err=True)

    show(view, as_json, render)

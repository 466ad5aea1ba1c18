"""A model version's card: what the owner signs, read where it is decided.

The page shows the card's statements as the console's own sections (data, training, evaluation,
limitations, the AI Act's assessment, the monitoring plan, acceptance and history), whether the
owner's sign-off still holds for them, and its Markdown and HTML documents as downloads: those
carry their own styles, which the console's policy would not run. The data scientist writes the
limitations; the owner signs the card as the page showed it: a sign-off whose card changed
since the page was loaded is refused, so nobody signs what they did not read.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from valueloop.console.web import Form, Problems, View, text
from valueloop.errors import InvalidInput
from valueloop.learn import modelcard
from valueloop.learn.modelcard import CardState
from valueloop.outcomes.roles import Action, allows
from valueloop.outcomes.usecases import UseCaseView, get_usecase
from valueloop.outcomes.usecases import view as usecase_view

router = APIRouter()
#: the card's documents, by the format a download names
DOCUMENTS = {"md": ("markdown", "text/markdown; charset=utf-8"), "html": ("html", "text/html; charset=utf-8")}


class CardPage(CardState):
    usecase: UseCaseView
    may_write_limitations: bool
    may_sign: bool


def build(view: View, name: str, version: int) -> CardPage:
    found = modelcard.show(view.s, view.settings, view.name, name, version)
    usecase = get_usecase(view.s, name)
    return CardPage(
        **{field: getattr(found, field) for field in CardState.model_fields}, usecase=usecase_view(usecase),
        may_write_limitations=allows(view.s, view.user, Action.train, usecase),
        may_sign=allows(view.s, view.user, Action.sign_model_card, usecase) and not view.user.is_system,
    )


def _render(view: View, name: str, version: int, problems: Problems | None = None) -> Response:
    found = build(view, name, version)
    return view.render("modelcard.html", found, nav="usecases", etag=found.digest, problems=problems)


def _path(name: str, version: int) -> str:
    return f"/usecases/{name}/models/{version}/card"


def _fresh(view: View, form: Form, name: str, version: int) -> None:
    """The limitations and the sign-off were written against the card as the page showed it."""
    view.fresh(form, modelcard.current_digest(view.s, view.name, name, version),
               f"the model card of {name} v{version}")


@router.get("/usecases/{name}/models/{version}/card")
def page(name: str, version: int, view: View) -> Response:
    return _render(view, name, version)


@router.get("/usecases/{name}/models/{version}/card/document")
def document(name: str, version: int, view: View, format: str = "md") -> Response:
    """The card's Markdown or HTML, as a file to keep with the model's documentation."""
    if format not in DOCUMENTS:
        raise InvalidInput(f"format: {format!r} is not a card format; formats: {', '.join(DOCUMENTS)}")
    field, media_type = DOCUMENTS[format]
    found = modelcard.show(view.s, view.settings, view.name, name, version)
    return Response(getattr(found, field), media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{name}-v{version}-model-card.{format}"'})


@router.post("/usecases/{name}/models/{version}/card/limitations")
def limitations(name: str, version: int, view: View, form: Form) -> Response:
    _fresh(view, form, name, version)
    written = text(form, "limitations")
    return view.attempt(lambda s: modelcard.generate(s, view.settings, view.name, name, version, written),
                        _path(name, version), lambda problems: _render(view, name, version, problems),
                        fields={"limitations"})


@router.post("/usecases/{name}/models/{version}/card/signoff")
def sign(name: str, version: int, view: View, form: Form) -> Response:
    """The owner signs the card the page showed: its digest travels with the form."""
    _fresh(view, form, name, version)
    return view.attempt(lambda s: modelcard.sign(s, view.settings, view.name, name, version),
                        _path(name, version), lambda problems: _render(view, name, version, problems))

"""A model card as Markdown and HTML (Jinja2). Every value the card shows passes one escape at
output (the templates' ``finalize``): names, limitations and notices are written by people, and a
card is read in browsers and Markdown viewers."""

from __future__ import annotations

import html
import re
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment

    from valueloop.learn.modelcard import ModelCard
    from valueloop.learn.tables import ModelVersion

#: what Markdown reads as markup within a line; after html.escape, < > & are entities already
_MARKDOWN = re.compile(r"([\\`*_{}\[\]#!|~])")


def _shown(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return str(value)


def _markdown(value: Any) -> str:
    """One value as Markdown text that renders as itself: no markup, no HTML, one line."""
    return _MARKDOWN.sub(r"\\\1", " ".join(html.escape(_shown(value), quote=False).splitlines()))


@cache
def _environment(markdown: bool) -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    if markdown:
        return Environment(loader=PackageLoader("valueloop.learn"), autoescape=False, finalize=_markdown,
                           undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return Environment(loader=PackageLoader("valueloop.learn"), autoescape=True, finalize=_shown,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(card: ModelCard, digest: str, evaluated: dict[str, Any], row: ModelVersion) -> tuple[str, str]:
    """The card as (Markdown, HTML): its statements, the run's per-segment metrics, calibration and
    the ten most important features (with the sample they were measured on), and the sign-off as it
    stands against ``digest``."""
    context = {
        "card": card, "digest": digest, "segments": evaluated.get("segments") or {},
        "calibration": evaluated.get("calibration"),
        "importance": list((evaluated.get("importance") or {}).items())[:10],
        "importance_sample": evaluated.get("importance_sample"),
        "signed": row.card_signed_digest == digest, "signed_by": row.card_signed_by, "signed_at": row.card_signed_at,
        "previously_signed": row.card_signed_digest is not None and row.card_signed_digest != digest,
    }
    return (_environment(True).get_template("modelcard.md.j2").render(context),
            _environment(False).get_template("modelcard.html.j2").render(context))

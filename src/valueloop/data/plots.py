"""A stored profile drawn: one panel per column (histogram or top values), as PNG or an HTML page."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

_STATS = ("type", "nulls", "distinct", "min", "max", "mean", "std")


def _panels(profile: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, stats) for name, stats in profile["columns"].items()
            if stats.get("histogram", {}).get("counts") or stats.get("top_values")]


def png(profile: dict[str, Any], title: str) -> bytes:
    """Histograms of the numeric columns and top values of the categorical ones, in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(profile)
    columns = 3
    rows = max(1, math.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3 * rows), squeeze=False)
    for ax, (name, stats) in zip(axes.flat, panels, strict=False):
        if "histogram" in stats:
            edges, counts = stats["histogram"]["edges"], stats["histogram"]["counts"]
            ax.stairs(counts, edges, fill=True, alpha=0.8)
        else:
            top = stats["top_values"]
            ax.barh([str(t["value"])[:18] for t in top][::-1], [t["count"] for t in top][::-1])
        ax.set_title(f"{name} ({stats['nulls']} null)", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def _approximate(stats: dict[str, Any], stat: str) -> str:
    return "~" if stat == "distinct" and stats.get("distinct_approximate", True) else ""


def page(profile: dict[str, Any], title: str) -> str:
    """A self-contained HTML page: the statistics table and the figure inlined."""
    head = "".join(f"<th>{s}</th>" for s in ("column", *_STATS))
    body = "".join(
        "<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{_approximate(stats, s)}{_cell(stats.get(s))}</td>"
                                                           for s in _STATS) + "</tr>"
        for name, stats in profile["columns"].items()
    )
    image = base64.b64encode(png(profile, title)).decode()
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{profile['rows']} rows</p>"
        f"<table><tr>{head}</tr>{body}</table>"
        f"<img alt='histograms' src='data:image/png;base64,{image}'></body></html>"
    )
